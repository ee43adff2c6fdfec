package podsim

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestServable(t *testing.T) {
	now := metav1.Now()
	tests := []struct {
		name   string
		mod    func(*corev1.Pod)
		want   bool
		reason string
	}{
		{"ready loopback pod", func(*corev1.Pod) {}, true, ""},
		{"not ready", func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }, false, "not ready"},
		{"no ready condition", func(p *corev1.Pod) { p.Status.Conditions = nil }, false, "not ready"},
		{"pending", func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }, false, "phase Pending"},
		{"terminating", func(p *corev1.Pod) { p.DeletionTimestamp = &now }, false, "terminating"},
		{"host network", func(p *corev1.Pod) { p.Spec.HostNetwork = true }, false, "host network"},
		{"no IP", func(p *corev1.Pod) { p.Status.PodIP = "" }, false, "no pod IP"},
		{"routable IP", func(p *corev1.Pod) { p.Status.PodIP = "10.244.0.7" }, false, "pod IP is not a loopback address"},
		{"IPv6 loopback", func(p *corev1.Pod) { p.Status.PodIP = "::1" }, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := Servable(testPod(tt.mod))
			if got != tt.want || reason != tt.reason {
				t.Errorf("Servable = %v, %q; want %v, %q", got, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestProtocolForPortName(t *testing.T) {
	for name, want := range map[string]Protocol{
		"grpc": ProtocolGRPC, "grpc-api": ProtocolGRPC, "GRPC": ProtocolGRPC, "grpcs": ProtocolGRPC,
		"http": ProtocolHTTP, "http-metrics": ProtocolHTTP, "": ProtocolHTTP, "web": ProtocolHTTP, "h2c": ProtocolHTTP,
	} {
		if got := ProtocolForPortName(name); got != want {
			t.Errorf("ProtocolForPortName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestPlanForPod(t *testing.T) {
	pod := testPod(func(p *corev1.Pod) {
		p.Spec.Containers = append([]corev1.Container{{Name: "init-like", Image: "busybox"}}, p.Spec.Containers...)
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
			Name: "sidecar", Image: "sidecar:1",
			Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 1500}, {Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}},
		})
		p.Spec.Containers[1].Env = []corev1.EnvVar{{Name: EnvVersion, Value: "v7"}}
	})
	plan, err := PlanForPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	wantPorts := []PortPlan{
		{Name: "admin", Port: 1500, Protocol: ProtocolHTTP, Container: "sidecar"},
		{Name: "http", Port: 9898, Protocol: ProtocolHTTP, Container: "podinfo"},
		{Name: "grpc", Port: 9999, Protocol: ProtocolGRPC, Container: "podinfo"},
	}
	if !reflect.DeepEqual(plan.Ports, wantPorts) {
		t.Errorf("ports = %+v\nwant %+v", plan.Ports, wantPorts)
	}
	// The app container is the first one declaring ports, not the first container.
	if plan.Behavior.Version != "v7" {
		t.Errorf("version = %q, want v7 from the app container", plan.Behavior.Version)
	}
	if plan.PodIP != "127.1.0.5" || plan.UID != pod.UID || plan.Identity.Workload != "podinfo" {
		t.Errorf("plan = %+v", plan)
	}
}

func TestPlanForPodMetricsAnnotation(t *testing.T) {
	grpcOnly := func(p *corev1.Pod) { p.Spec.Containers[0].Ports = p.Spec.Containers[0].Ports[1:] }
	plan, err := PlanForPod(testPod(grpcOnly, func(p *corev1.Pod) {
		p.Annotations = map[string]string{"prometheus.io/port": "9797"}
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []PortPlan{
		{Name: "metrics", Port: 9797, Protocol: ProtocolHTTP},
		{Name: "grpc", Port: 9999, Protocol: ProtocolGRPC, Container: "podinfo"},
	}
	if !reflect.DeepEqual(plan.Ports, want) {
		t.Errorf("ports = %+v, want %+v", plan.Ports, want)
	}
	// An annotation naming a declared port adds nothing.
	plan, err = PlanForPod(testPod(func(p *corev1.Pod) { p.Annotations = map[string]string{"prometheus.io/port": "9898"} }))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Ports) != 2 {
		t.Errorf("ports = %+v, want the two declared ones", plan.Ports)
	}
}

func TestPlanForPodErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*corev1.Pod)
		want string
	}{
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil }, "no containers"},
		{"no ports", func(p *corev1.Pod) { p.Spec.Containers[0].Ports = nil }, "no TCP container ports"},
		{"only UDP", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 53, Protocol: corev1.ProtocolUDP}}
		}, "no TCP container ports"},
		{"duplicate port", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "b", Ports: []corev1.ContainerPort{{ContainerPort: 9898}}})
		}, "declared twice"},
		{"bad annotation", func(p *corev1.Pod) { p.Annotations = map[string]string{"prometheus.io/port": "http"} }, "not a port number"},
		{"bad env", withEnv(EnvErrorRate, "1.5"), "ERROR_RATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := PlanForPod(testPod(tt.mod))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestWorkloadName(t *testing.T) {
	owner := func(kind, name string, controller bool) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: name, Controller: ptr.To(controller)}}
		}
	}
	tests := []struct {
		name string
		mod  func(*corev1.Pod)
		want string
	}{
		{"deployment pod", func(*corev1.Pod) {}, "podinfo"},
		{"canary copy", func(p *corev1.Pod) {
			p.Labels["pod-template-hash"] = "5c8d9b7f4"
			owner("ReplicaSet", "podinfo-canary-5c8d9b7f4", true)(p)
		}, "podinfo-canary"},
		{"bare replicaset", func(p *corev1.Pod) {
			delete(p.Labels, "pod-template-hash")
			owner("ReplicaSet", "frontend", true)(p)
		}, "frontend"},
		{"hash label not a suffix", owner("ReplicaSet", "frontend-abc", true), "frontend-abc"},
		{"statefulset", owner("StatefulSet", "db", true), "db"},
		{"cronjob job", owner("Job", "report-28433720", true), "report"},
		{"plain job", owner("Job", "migrate-1", true), "migrate-1"},
		{"owner not a controller", owner("ReplicaSet", "podinfo-7d9f8c6b5", false), "podinfo-7d9f8c6b5-x2x4z"},
		{"no owner", func(p *corev1.Pod) { p.OwnerReferences = nil }, "podinfo-7d9f8c6b5-x2x4z"},
		{"name not generated", func(p *corev1.Pod) { p.GenerateName = "" }, "podinfo-7d9f8c6b5-x2x4z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WorkloadName(testPod(tt.mod)); got != tt.want {
				t.Errorf("WorkloadName = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIdentityForPod(t *testing.T) {
	got := IdentityForPod(testPod())
	want := Identity{
		Pod: "podinfo-7d9f8c6b5-x2x4z", Namespace: "test", Workload: "podinfo",
		App: "podinfo", Version: "unknown", CanonicalService: "podinfo", CanonicalRevision: "latest",
	}
	if got != want {
		t.Errorf("identity = %+v\nwant %+v", got, want)
	}

	got = IdentityForPod(testPod(func(p *corev1.Pod) {
		p.Labels = map[string]string{
			"pod-template-hash":                   "7d9f8c6b5",
			"version":                             "v2",
			"app.kubernetes.io/name":              "info",
			"service.istio.io/canonical-revision": "r9",
		}
	}))
	want = Identity{
		Pod: "podinfo-7d9f8c6b5-x2x4z", Namespace: "test", Workload: "podinfo",
		App: "unknown", Version: "v2", CanonicalService: "info", CanonicalRevision: "r9",
	}
	if got != want {
		t.Errorf("identity = %+v\nwant %+v", got, want)
	}
}
