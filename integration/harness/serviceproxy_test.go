package harness

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

func testPod(name, ip string, lbls map[string]string, ready bool, port int32) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "test", Labels: lbls},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: port, Protocol: corev1.ProtocolTCP}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func TestServiceEndpoints(t *testing.T) {
	canary := map[string]string{"app": "podinfo-canary"}
	done := testPod("done", "127.9.0.5", canary, false, 9898)
	done.Status.Phase = corev1.PodSucceeded
	noIP := testPod("no-ip", "", canary, false, 9898)
	cs := fake.NewClientset(
		testPod("c-1", "127.9.0.1", canary, true, 9898),
		testPod("c-2", "127.9.0.2", canary, false, 9898),
		testPod("s-1", "127.9.0.3", map[string]string{"app": "podinfo"}, true, 9898),
		done, noIP,
	)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "podinfo-canary", Namespace: "test"},
		Spec: corev1.ServiceSpec{Selector: canary}}
	port := corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http")}
	got, err := ServiceEndpoints(context.Background(), cs, svc, port)
	if err != nil {
		t.Fatal(err)
	}
	want := []Endpoint{{Pod: "c-1", IP: "127.9.0.1", Port: 9898, Ready: true}, {Pod: "c-2", IP: "127.9.0.2", Port: 9898}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("endpoints %+v, want %+v", got, want)
	}
	if got, _ := ServiceEndpoints(context.Background(), cs, svc, corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("grpc")}); len(got) != 0 {
		t.Errorf("a named port no container has: %+v", got)
	}
	svc.Spec.Selector = nil
	if got, _ := ServiceEndpoints(context.Background(), cs, svc, port); len(got) != 0 {
		t.Errorf("a Service without a selector has endpoints: %+v", got)
	}
}

func TestServiceProxy(t *testing.T) {
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "pong") })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = backend.Serve(ln) }()
	t.Cleanup(func() { backend.Close() })
	podPort := int32(ln.Addr().(*net.TCPAddr).Port)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svcPort := int32(free.Addr().(*net.TCPAddr).Port)
	free.Close()

	sel := map[string]string{"app": "podinfo"}
	cs := fake.NewClientset(
		testPod("ready", "127.0.0.1", sel, true, podPort),
		testPod("unready", "127.0.0.1", sel, false, podPort),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
			Spec: corev1.ServiceSpec{ClusterIP: "127.0.0.1", Selector: sel, Ports: []corev1.ServicePort{{Port: svcPort, TargetPort: intstr.FromString("http")}}}},
	)
	p := ProxyService(t, cs, "test", "podinfo")
	if p.Addr != "127.0.0.1:"+strconv.Itoa(int(svcPort)) {
		t.Fatalf("listening on %s", p.Addr)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 3 {
		resp, err := client.Get("http://" + p.Addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "pong" {
			t.Fatalf("through the proxy: %q", b)
		}
	}
	if got := p.Forwarded(); got["ready"] != 3 || len(got) != 1 {
		t.Fatalf("forwarded %v, want 3 connections to the ready pod only", got)
	}
}
