package podsim

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/integration/cluster"
)

// The runner is exercised against the real API server of the package's cluster. The
// pods live on a static node (see staticNode) whose kubelet the test plays, so that
// readiness, pod IPs and deletion are under the test's control.

func TestSimulatorLifecycle(t *testing.T) {
	c := cluster.Get(t)
	node := newStaticNode(t, c)
	ns, elsewhere := c.Namespace(t), c.Namespace(t)
	sim, stop := runSim(t, node.cs, Options{Namespaces: []string{ns}, ShutdownTimeout: time.Second})
	pods := node.cs.CoreV1().Pods(ns)

	ip := node.nextIP()
	pod := node.runningPod(ns, "web", ip)
	waitServing(t, sim, "pod served", servingExactly(map[string]string{"web": "6.0.1"}))
	info := decodeJSON[InfoResponse](t, doHTTP(t, http.MethodGet, "http://"+hostPort(ip, 9898)+"/", nil, nil).body)
	if info != (InfoResponse{Hostname: "web", Version: "6.0.1", Message: "greetings from web", Namespace: ns, Workload: "web", PodIP: ip}) {
		t.Errorf("GET / = %+v", info)
	}

	// Pods outside the watched namespaces, and pods whose env cannot be parsed, are
	// never served.
	otherIP, badIP := node.nextIP(), node.nextIP()
	node.runningPod(elsewhere, "web", otherIP)
	node.runningPod(ns, "bad", badIP, withEnv(EnvErrorRate, "lots"))

	// A new image is a new version (no VERSION env): the server restarts with it, as
	// the kubelet restarts a container whose image changed.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := pods.Get(t.Context(), pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Spec.Containers[0].Image = "ghcr.io/stefanprodan/podinfo:6.1.0"
		_, err = pods.Update(t.Context(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("change image: %v", err)
	}
	// The bad pod's event was queued before the update, so it has been handled by now.
	waitServing(t, sim, "pod restarted with the new image", servingExactly(map[string]string{"web": "6.1.0"}))
	if info := decodeJSON[InfoResponse](t, doHTTP(t, http.MethodGet, "http://"+hostPort(ip, 9898)+"/", nil, nil).body); info.Version != "6.1.0" {
		t.Errorf("after the image change GET / = %+v", info)
	}
	assertRefused(t, hostPort(otherIP, 9898), hostPort(otherIP, 9999), hostPort(badIP, 9898), hostPort(badIP, 9999))

	// A new pod IP moves the server.
	newIP := node.nextIP()
	node.setStatus(pod, newIP, true)
	waitServing(t, sim, "pod served on its new IP", func(addrs []PodAddr) bool {
		return servingExactly(map[string]string{"web": "6.1.0"})(addrs) && hostOf(addrs[0].Addr) == newIP
	})
	assertRefused(t, hostPort(ip, 9898), hostPort(ip, 9999))
	if info := decodeJSON[InfoResponse](t, doHTTP(t, http.MethodGet, "http://"+hostPort(newIP, 9898)+"/", nil, nil).body); info.PodIP != newIP {
		t.Errorf("after the IP change GET / = %+v", info)
	}

	// Not Ready: the pod stops answering.
	node.setStatus(pod, newIP, false)
	waitServing(t, sim, "unready pod stopped", servingNothing)
	assertRefused(t, hostPort(newIP, 9898), hostPort(newIP, 9999))

	// Ready again, then deleted: a terminating pod is not served. No kubelet finishes
	// the graceful deletion, so the pod stays terminating.
	node.setStatus(pod, newIP, true)
	waitServing(t, sim, "ready pod served again", servingExactly(map[string]string{"web": "6.1.0"}))
	if err := pods.Delete(t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if p, err := pods.Get(t.Context(), pod.Name, metav1.GetOptions{}); err != nil || p.DeletionTimestamp == nil {
		t.Fatalf("after a graceful delete want a terminating pod, got %v, %v", p, err)
	}
	waitServing(t, sim, "terminating pod stopped", servingNothing)
	assertRefused(t, hostPort(newIP, 9898), hostPort(newIP, 9999))

	// Shutting down closes every listener.
	node.runningPod(ns, "last", node.nextIP())
	waitServing(t, sim, "new pod served", servingExactly(map[string]string{"last": "6.0.1"}))
	last := sim.Serving()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, a := range last {
		assertRefused(t, a.Addr)
	}
	if got := sim.Serving(); len(got) != 0 {
		t.Errorf("Serving after Run = %+v", got)
	}
}

// Two pods in turn on one address: the second cannot bind while the first holds the
// address, and is served once the first is gone. The simulator watches all
// namespaces, narrowed by a label selector.
func TestSimulatorAddressReuse(t *testing.T) {
	c := cluster.Get(t)
	node := newStaticNode(t, c)
	ns := c.Namespace(t)
	var inUse atomic.Int32
	listen := func(ctx context.Context, network, addr string) (net.Listener, error) {
		l, err := (&net.ListenConfig{}).Listen(ctx, network, addr)
		if errors.Is(err, syscall.EADDRINUSE) {
			inUse.Add(1)
		}
		return l, err
	}
	sim, _ := runSim(t, node.cs, Options{LabelSelector: "podsim-test=" + ns, Listen: listen})
	labelled := func(p *corev1.Pod) { p.Labels["podsim-test"] = ns }

	unlabelledIP, ip := node.nextIP(), node.nextIP()
	node.runningPod(ns, "unlabelled", unlabelledIP)
	node.runningPod(ns, "first", ip, labelled, withEnv(EnvVersion, "first"))
	waitServing(t, sim, "first pod served", servingExactly(map[string]string{"first": "first"}))

	node.runningPod(ns, "second", ip, labelled, withEnv(EnvVersion, "second"))
	// Removed outright, as the kubelet does once the containers have stopped.
	if err := node.cs.CoreV1().Pods(ns).Delete(t.Context(), "first", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	waitServing(t, sim, "second pod served", servingExactly(map[string]string{"second": "second"}))
	res := doHTTP(t, http.MethodGet, "http://"+hostPort(ip, 9898)+"/version", nil, nil)
	if v := decodeJSON[map[string]string](t, res.body); v["version"] != "second" || res.header.Get(HeaderPod) != "second" {
		t.Errorf("/version = %v from pod %q, want the second pod", v, res.header.Get(HeaderPod))
	}
	if inUse.Load() == 0 {
		t.Error("the second pod was never refused its address while the first held it")
	}
	assertRefused(t, hostPort(unlabelledIP, 9898), hostPort(unlabelledIP, 9999))
}

// runSim runs a Simulator until the test ends. stop ends it early and returns Run's
// result; it may be called more than once.
func runSim(t *testing.T, client kubernetes.Interface, opts Options) (*Simulator, func() error) {
	t.Helper()
	if opts.Logger.GetSink() == nil {
		opts.Logger = testr.New(t)
	}
	sim := New(client, opts)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- sim.Run(ctx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-runErr:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("Run did not return within 15s of the cancel")
		}
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return sim, stop
}

// waitServing waits up to a minute for cond to hold for the served addresses.
func waitServing(t *testing.T, sim *Simulator, what string, cond func([]PodAddr) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := sim.WaitFor(ctx, cond); err != nil {
		t.Fatalf("%s: %v; serving %+v", what, err, sim.Serving())
	}
}

// servingExactly holds when the pods served are exactly those of want (pod name to
// version), each on its two ports.
func servingExactly(want map[string]string) func([]PodAddr) bool {
	return func(addrs []PodAddr) bool {
		n := map[string]int{}
		for _, a := range addrs {
			if v, ok := want[a.Name]; !ok || v != a.Version {
				return false
			}
			n[a.Name]++
		}
		for name := range want {
			if n[name] != 2 {
				return false
			}
		}
		return true
	}
}

func servingNothing(addrs []PodAddr) bool { return len(addrs) == 0 }

// refused reports whether a TCP connection to addr is refused: nothing listens there.
func refused(addr string) (bool, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		conn.Close()
		return false, nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true, nil
	}
	return false, err
}

func assertRefused(t *testing.T, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if ok, err := refused(a); !ok {
			t.Errorf("%s: want connection refused, got a connection (error %v)", a, err)
		}
	}
}

func hostOf(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	return host
}
