// Package migrate is the end-to-end test of `serin migrate` on the real
// local cluster: the state a Flagger controller leaves after a release is
// built by hand with kubectl, grpc-go clients send to the Service the
// whole time (through the userspace stand-in for kube-proxy), serin takes
// the Canary over, and a new version then runs a serin release.
package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/integration/podsim"
)

func TestMain(m *testing.M) {
	cluster.Main(m, cluster.Options{Nodes: 2})
}

// env is the test's namespace, clients and serin.
type env struct {
	t   *testing.T
	c   *cluster.Cluster
	cs  kubernetes.Interface
	ns  string
	ctx context.Context
}

func (e *env) kubectl(stdin string, args ...string) string {
	e.t.Helper()
	out, err := e.c.Kubectl(e.ctx, stdin, append(args, "-n", e.ns)...)
	if err != nil {
		e.t.Fatalf("kubectl %v: %v", args, err)
	}
	return out
}

// serin runs the CLI against the namespace: output and exit code.
func (e *env) serin(args ...string) (string, int) {
	e.t.Helper()
	bin, err := harness.Binary()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.CommandContext(e.ctx, bin, append([]string{"--kubeconfig=" + e.c.Kubeconfig, "-n", e.ns}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	e.t.Fatalf("serin %v: %v", args, err)
	return "", -1
}

// eventually polls cond until it holds or d passes.
func (e *env) eventually(d time.Duration, what string, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not after %s: %s", what, d, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// jsonpath reads one field of an object.
func (e *env) jsonpath(kind, name, path string) string {
	e.t.Helper()
	return e.kubectl("", "get", kind, name, "-o", "jsonpath="+path)
}

// gone reports whether the object no longer exists.
func (e *env) gone(kind, name string) bool {
	_, err := e.c.Kubectl(e.ctx, "", "get", kind, name, "-n", e.ns)
	return err != nil && strings.Contains(err.Error(), "NotFound")
}

// sender keeps UnaryCalls going to one address from a few grpc-go
// channels and counts what answered.
type sender struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	byPod        map[string]int
	lastErr      error
	stop         chan struct{}
	wg           sync.WaitGroup
}

func startSender(t *testing.T, addr string, channels int) *sender {
	s := &sender{byPod: map[string]int{}, stop: make(chan struct{})}
	for range channels {
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		client := testgrpc.NewTestServiceClient(conn)
		s.wg.Go(func() {
			for {
				select {
				case <-s.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var header metadata.MD
				// Not wait-for-ready: a channel that cannot connect (a
				// Service without ready endpoints) fails its calls.
				_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Header(&header))
				cancel()
				s.sent.Add(1)
				s.mu.Lock()
				if err != nil {
					s.failed.Add(1)
					s.lastErr = err
				} else if p := header.Get("x-pod"); len(p) > 0 {
					s.byPod[p[0]]++
				}
				s.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	t.Cleanup(s.halt)
	return s
}

func (s *sender) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// pods are the counts by pod since the last call.
func (s *sender) pods() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.byPod
	s.byPod = map[string]int{}
	return out
}

// TestMigrateFromFlagger takes over a Canary Flagger left after a
// successful release without losing a request.
func TestMigrateFromFlagger(t *testing.T) {
	c := cluster.Get(t)
	harness.InstallIstioCRDs(t, c)
	// flagger.compat installs Flagger's CRDs; serin runs without
	// --flagger-compat, as a cluster where Flagger still runs them.
	harness.Install(t, c, harness.Options{Sets: []string{"flagger.compat=true"}})
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	e := &env{t: t, c: c, cs: cs, ns: c.Namespace(t), ctx: ctx}
	sim := harness.RunPodsim(t, c, e.ns)
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer ccancel()
		_, _ = c.Kubectl(cctx, "", "delete", "deployment", "--all", "-n", e.ns, "--wait=false")
		_, _ = c.Kubectl(cctx, "", "delete", "canaries.serin.dev", "--all", "-n", e.ns, "--timeout=15s")
	})

	e.flaggerState()
	if err := sim.WaitFor(ctx, func(addrs []podsim.PodAddr) bool { return servedPods(addrs, e.ns, "podinfo-primary-") == 2 }); err != nil {
		t.Fatal(err)
	}
	proxy := harness.ProxyService(t, cs, e.ns, "podinfo")
	s := startSender(t, proxy.Addr, 4)
	e.eventually(time.Minute, "requests answered by the primary", func() (bool, string) {
		return s.sent.Load()-s.failed.Load() >= 50, fmt.Sprintf("%d sent, %d failed", s.sent.Load(), s.failed.Load())
	})
	e.refusals()

	out, code := e.serin("migrate")
	if code != 0 || !strings.Contains(out, "dry run") || !strings.Contains(out, "delete Deployment podinfo-primary") {
		t.Fatalf("dry run exited %d:\n%s", code, out)
	}
	if r := e.jsonpath("deployment", "podinfo", "{.spec.replicas}"); r != "0" {
		t.Fatalf("the dry run changed the Deployment: %s replicas", r)
	}

	e.slowCapacity(3 * time.Second)
	before := s.pods()
	start := time.Now()
	out, code = e.serin("migrate", "podinfo", "--apply", "--drain=0s", "--timeout=2m")
	took := time.Since(start)
	t.Logf("serin migrate --apply (%s):\n%s", took.Round(time.Millisecond), out)
	if code != 0 {
		t.Fatalf("migrate exited %d", code)
	}
	// Keep sending until the user's pods answered a good number more.
	e.eventually(time.Minute, "requests answered by the user's pods", func() (bool, string) {
		n := 0
		for p, k := range s.pods() {
			before[p] += k
		}
		for p, k := range before {
			if !strings.HasPrefix(p, "podinfo-primary-") {
				n += k
			}
		}
		return n >= 100, fmt.Sprintf("by pod %v", before)
	})
	s.halt()
	t.Logf("migration: %d requests sent, %d failed, switch (serin migrate --apply) took %s; answered by pod: %v",
		s.sent.Load(), s.failed.Load(), took.Round(time.Millisecond), before)
	t.Logf("FIGURE migrate_calls_sent=%d migrate_calls_failed=%d migrate_switch=%s", s.sent.Load(), s.failed.Load(), took.Round(time.Millisecond))
	if s.failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed, the last: %v", s.failed.Load(), s.sent.Load(), s.lastErr)
	}
	e.endState()
	if out, code := e.serin("migrate", "podinfo", "--apply"); code != 0 || !strings.Contains(out, "taken over already") {
		t.Fatalf("migrate again exited %d:\n%s", code, out)
	}
	e.releaseAfter(proxy)
}

// slowCapacity holds back the pods migrate brings up: a ResourceQuota
// admits no pod beyond those running until hold after the user's
// Deployment is scaled up, so a takeover that pointed the Service at the
// user's pods, or deleted the primary, before they serve would fail calls.
func (e *env) slowCapacity(hold time.Duration) {
	e.t.Helper()
	e.kubectl("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: capacity}\nspec: {hard: {pods: \"2\"}}\n", "apply", "-f", "-")
	e.eventually(time.Minute, "the quota counts the primary's pods", func() (bool, string) {
		u := e.jsonpath("resourcequota", "capacity", "{.status.used.pods}")
		return u == "2", u
	})
	done := make(chan struct{})
	e.t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		for e.ctx.Err() == nil {
			out, err := e.c.Kubectl(e.ctx, "", "get", "deployment", "podinfo", "-n", e.ns, "-o", "jsonpath={.spec.replicas}")
			if err == nil && out != "0" {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(hold)
		_, _ = e.c.Kubectl(e.ctx, "", "delete", "resourcequota", "capacity", "-n", e.ns)
	}()
}

// servedPods counts the gRPC ports podsim serves for pods of ns whose
// name starts with prefix (and not with the primary's, for "podinfo-").
func servedPods(addrs []podsim.PodAddr, ns, prefix string) int {
	n := 0
	for _, a := range addrs {
		if a.Namespace == ns && a.PortName == "grpc" && strings.HasPrefix(a.Name, prefix) &&
			(prefix == "podinfo-primary-" || !strings.HasPrefix(a.Name, "podinfo-primary-")) {
			n++
		}
	}
	return n
}

// refusals: a Canary mid-release is refused, and so is one while a
// Deployment named flagger has available pods; nothing is touched.
func (e *env) refusals() {
	e.t.Helper()
	e.kubectl(`{"status":{"phase":"Progressing","canaryWeight":10}}`, "patch", "canaries.flagger.app", "podinfo",
		"--subresource=status", "--type=merge", "--patch-file=/dev/stdin")
	out, code := e.serin("migrate", "--apply", "--settle=0s")
	if code == 0 || !strings.Contains(out, `phase "Progressing" is not between releases`) {
		e.t.Fatalf("mid-release canary taken over (exit %d):\n%s", code, out)
	}
	e.kubectl(`{"status":{"phase":"Succeeded","canaryWeight":0}}`, "patch", "canaries.flagger.app", "podinfo",
		"--subresource=status", "--type=merge", "--patch-file=/dev/stdin")
	e.kubectl(flaggerController, "apply", "-f", "-")
	e.eventually(time.Minute, "flagger's stand-in available", func() (bool, string) {
		r := e.jsonpath("deployment", "flagger", "{.status.availableReplicas}")
		return r == "1", r
	})
	out, code = e.serin("migrate", "--apply", "--settle=0s")
	if code == 0 || !strings.Contains(out, "Flagger's controller appears to be running") {
		e.t.Fatalf("taken over while Flagger runs (exit %d):\n%s", code, out)
	}
	e.kubectl("", "delete", "deployment", "flagger", "--wait=true")
	if r := e.jsonpath("deployment", "podinfo", "{.spec.replicas}"); r != "0" {
		e.t.Fatalf("a refused migration changed the Deployment: %s replicas", r)
	}
}

// endState: the user's Deployment serves the primary's version, Flagger's
// leftovers are gone (what it does not own stays), serin's Canary is
// initialized and serin's own Services stand in Flagger's.
func (e *env) endState() {
	e.t.Helper()
	if img := e.jsonpath("deployment", "podinfo", "{.spec.template.spec.containers[0].image} {.spec.replicas} {.status.readyReplicas}"); img != "ghcr.io/stefanprodan/podinfo:6.0.1 2 2" {
		e.t.Fatalf("Deployment podinfo: %s", img)
	}
	for _, kind := range []string{"deployment/podinfo-primary", "hpa/podinfo-primary", "virtualservice/podinfo", "canaries.flagger.app/podinfo"} {
		k, n, _ := strings.Cut(kind, "/")
		e.eventually(30*time.Second, kind+" deleted", func() (bool, string) { return e.gone(k, n), "still there" })
	}
	for _, kind := range []string{"hpa/podinfo", "destinationrule/podinfo-others", "configmap/podinfo-config"} {
		k, n, _ := strings.Cut(kind, "/")
		if e.gone(k, n) {
			e.t.Fatalf("%s, which Flagger did not own, was deleted", kind)
		}
	}
	svc, err := e.cs.CoreV1().Services(e.ns).Get(e.ctx, "podinfo", metav1.GetOptions{})
	if err != nil || svc.Spec.Selector["app"] != "podinfo" || len(svc.Spec.Selector) != 1 || len(svc.OwnerReferences) != 0 {
		e.t.Fatalf("Service podinfo: %v %+v", err, svc)
	}
	e.eventually(time.Minute, "serin's Canary initialized", func() (bool, string) {
		p := e.jsonpath("canaries.serin.dev", "podinfo", "{.status.phase}")
		return p == string(v1alpha1.PhaseInitialized) || p == string(v1alpha1.PhaseSucceeded), p
	})
	for _, name := range []string{"podinfo-primary", "podinfo-canary"} {
		e.eventually(time.Minute, "serin's Service "+name, func() (bool, string) {
			s, err := e.cs.CoreV1().Services(e.ns).Get(e.ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, "not found"
			}
			if err != nil {
				return false, err.Error()
			}
			return s.Labels[v1alpha1.LabelManagedBy] == v1alpha1.ManagedByValue, fmt.Sprintf("%v", s.Labels)
		})
	}
}

// releaseAfter: kubectl apply of a new image runs a serin release that
// promotes; new connections to the Service then reach the new version.
func (e *env) releaseAfter(proxy *harness.ServiceProxy) {
	e.t.Helper()
	e.kubectl(targetDeployment("6.0.2", 2), "apply", "-f", "-")
	if out, code := e.serin("wait", "podinfo", "--timeout=3m"); code != 0 {
		e.t.Fatalf("serin wait exited %d:\n%s", code, out)
	}
	e.eventually(time.Minute, "the new version answers", func() (bool, string) {
		conn, err := grpc.NewClient("passthrough:///"+proxy.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close()
		var header metadata.MD
		cctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		defer cancel()
		_, err = testgrpc.NewTestServiceClient(conn).UnaryCall(cctx, &testgrpc.SimpleRequest{}, grpc.Header(&header), grpc.WaitForReady(true))
		v := header.Get("x-version")
		return err == nil && len(v) == 1 && v[0] == "6.0.2", fmt.Sprintf("%v %v", v, err)
	})
	if phase := e.jsonpath("canaries.serin.dev", "podinfo", "{.status.phase}"); phase != string(v1alpha1.PhaseSucceeded) {
		e.t.Fatalf("serin's Canary after the release: %s", phase)
	}
}
