package podsim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	corev1 "k8s.io/api/core/v1"
)

// loopbackPod returns a pod on a random address of 127.0.0.0/8 (outside the usual
// 127.0.0.1 and the cluster's 127.1/16) with free ports, so tests binding real pod
// addresses do not collide with each other or with other processes.
func loopbackPod(t *testing.T, mods ...func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	ip := fmt.Sprintf("127.%d.%d.%d", 200+rand.IntN(50), rand.IntN(256), 1+rand.IntN(254))
	ports := make([]int32, 2)
	for i := range ports {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatalf("cannot bind %s (loopback addresses beyond 127.0.0.1 are needed): %v", ip, err)
		}
		ports[i] = int32(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	}
	return testPod(append([]func(*corev1.Pod){func(p *corev1.Pod) {
		p.Status.PodIP = ip
		p.Spec.Containers[0].Ports[0].ContainerPort = ports[0]
		p.Spec.Containers[0].Ports[1].ContainerPort = ports[1]
	}}, mods...)...)
}

func hostPort(ip string, port int32) string {
	return net.JoinHostPort(ip, strconv.Itoa(int(port)))
}

func TestPodServerListensOnPodIP(t *testing.T) {
	pod := loopbackPod(t)
	srv, err := NewPodServer(pod, ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ports := pod.Spec.Containers[0].Ports
	want := []PodAddr{
		{Namespace: "test", Name: pod.Name, PortName: "http", Protocol: ProtocolHTTP, Version: "6.0.1", Addr: hostPort(pod.Status.PodIP, ports[0].ContainerPort)},
		{Namespace: "test", Name: pod.Name, PortName: "grpc", Protocol: ProtocolGRPC, Version: "6.0.1", Addr: hostPort(pod.Status.PodIP, ports[1].ContainerPort)},
	}
	if ports[1].ContainerPort < ports[0].ContainerPort {
		want[0], want[1] = want[1], want[0]
	}
	if got := srv.Addrs(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Addrs = %+v\nwant %+v", got, want)
	}
	httpAddr := hostPort(pod.Status.PodIP, ports[0].ContainerPort)
	if res := doHTTP(t, http.MethodGet, "http://"+httpAddr+"/healthz", nil, nil); res.code != 200 {
		t.Errorf("healthz = %d", res.code)
	}
	if err := srv.Start(t.Context()); err == nil {
		t.Error("second Start succeeded")
	}
}

func TestPodServerStartReleasesPortsOnBindFailure(t *testing.T) {
	pod := loopbackPod(t)
	ip := pod.Status.PodIP
	ports := pod.Spec.Containers[0].Ports
	// Occupy the higher port, so the lower one is bound first and must be released.
	high := max(ports[0].ContainerPort, ports[1].ContainerPort)
	low := min(ports[0].ContainerPort, ports[1].ContainerPort)
	blocker, err := net.Listen("tcp", hostPort(ip, high))
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()

	srv, err := NewPodServer(pod, ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("Start = %v, want a listen error", err)
	}
	srv.Shutdown(context.Background())
	ln, err := net.Listen("tcp", hostPort(ip, low))
	if err != nil {
		t.Fatalf("port %d still bound after a failed Start: %v", low, err)
	}
	ln.Close()
}

func TestPodServerShutdownDrainsAndLeavesNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, err := NewPodServer(testPod(), ServerOptions{Listen: anyPortListen})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}
	for _, a := range srv.Addrs() {
		addrs[a.PortName] = a.Addr
	}
	transport := &http.Transport{}
	client := &http.Client{Transport: transport}
	cc := dial(t, addrs["grpc"])
	if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(t.Context(), &testgrpc.Empty{}); err != nil {
		t.Fatal(err)
	}

	// A request in flight when the pod stops is allowed to finish.
	inflight := make(chan int, 1)
	go func() {
		resp, err := client.Get("http://" + addrs["http"] + "/delay/0.3")
		if err != nil {
			inflight <- -1
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond) // let the request reach the handler

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	if code := <-inflight; code != 200 {
		t.Errorf("request in flight during shutdown: %d, want 200", code)
	}
	for name, addr := range addrs {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s port %s still accepts connections after Shutdown", name, addr)
		}
	}
	srv.Shutdown(ctx) // idempotent

	transport.CloseIdleConnections()
	cc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPodServerShutdownDeadlineCutsLongRequests(t *testing.T) {
	srv, addrs := servePod(t, testPod(), nil)
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + addrs["http"] + "/delay/30")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	srv.Shutdown(ctx)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Shutdown took %v with a 200ms deadline", took)
	}
	if err := <-done; err == nil {
		t.Error("the 30s request completed; want it cut when the deadline passed")
	}
}
