package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/analysis/tester"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/integration/podsim"
)

// istioXDSAddress is what serin tells Istio's Envoys to dial (google_grpc).
const istioXDSAddress = "serin-xds.serin-system.svc:18000"

// env is what every scenario shares: the cluster, serin, a client and the
// gate service.
type env struct {
	c     *cluster.Cluster
	s     *harness.Serin
	kube  client.Client
	cs    kubernetes.Interface
	gates *httptest.Server
	ist   *cluster.Istiod
}

func setup(t *testing.T) *env {
	c := cluster.Get(t)
	kube, err := harness.Client(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	harness.InstallIstioCRDs(t, c)
	// serin's tester, in process: the gates that hold each weight.
	ts := tester.New(tester.Options{Log: logr.Discard()})
	gates := httptest.NewServer(ts.Handler())
	t.Cleanup(func() { gates.Close(); ts.Close() })
	// istiod, for the releases routed through Gateway API: serin waits
	// for its proxies too.
	harness.InstallGatewayAPICRDs(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ist, err := c.StartIstiod(ctx, cluster.IstiodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ist.Kill)
	s := harness.Install(t, c, harness.Options{ExtraArgs: []string{
		"--istio-mode=google-grpc", "--istio-xds-address=" + istioXDSAddress,
		"--istiod-debug-url=" + ist.DebugURL,
	}})
	return &env{c: c, s: s, kube: kube, cs: cs, gates: gates, ist: ist}
}

// gate drives the tester's gate (and rollback gate) of one canary.
func (e *env) gate(t *testing.T, path, ns string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": "podinfo", "namespace": ns})
	resp, err := http.Post(e.gates.URL+path, "application/json", bytes.NewReader(body)) //nolint:noctx // loopback
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%s: %s", path, resp.Status)
	}
}

// gateHooks are the webhooks that hold every weight step and the promotion
// until the test opens the gate.
func (e *env) gateHooks() string {
	return fmt.Sprintf(`    webhooks:
    - {name: traffic-gate, type: confirm-traffic-increase, url: "%[1]s/gate/check"}
    - {name: promotion-gate, type: confirm-promotion, url: "%[1]s/gate/check"}
`, e.gates.URL)
}

// The versions of the two revisions: podsim answers with x-version.
const (
	v1 = "6.0.0"
	v2 = "6.0.1"
)

// canaryYAML is the release's Canary; analysis is the indented body of
// spec.analysis, service the flow mapping of spec.service.
func canaryYAML(ns, service, analysis string) string {
	return fmt.Sprintf(`apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: podinfo
  namespace: %s
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  progressDeadlineSeconds: 60
  service: %s
  analysis:
%s`, ns, service, analysis)
}

const grpcService = "{port: 9999, appProtocol: grpc}"

// release is one podinfo release in a test namespace.
type release struct {
	t   *testing.T
	e   *env
	ns  string
	sim *podsim.Simulator
	// slowApply: the data plane takes longer to confirm a step (clients
	// of istiod, whose gRPC C-core acknowledges late).
	slowApply bool
}

// newRelease makes a namespace with podsim running, applies the Canary and
// version v1 of the Deployment, and waits for Initialized.
func newRelease(t *testing.T, e *env, service, analysis string) *release {
	t.Helper()
	return newReleaseOf(t, e, func(ns string) string { return canaryYAML(ns, service, analysis) })
}

// newReleaseOf is newRelease with the Canary manifest canary(ns).
func newReleaseOf(t *testing.T, e *env, canary func(ns string) string) *release {
	t.Helper()
	return newReleaseIn(t, e, e.c.Namespace(t), canary)
}

// newReleaseIn is newReleaseOf in an existing namespace.
func newReleaseIn(t *testing.T, e *env, ns string, canary func(ns string) string) *release {
	t.Helper()
	r := &release{t: t, e: e, ns: ns, sim: harness.RunPodsim(t, e.c, ns)}
	r.kubectlApply(canary(ns) + "---\n" + harness.PodinfoDeployment(ns, v1, 3, ""))
	r.waitFor("phase Initialized", time.Minute, func(c *v1alpha1.Canary) bool { return c.Status.Phase == v1alpha1.PhaseInitialized })
	return r
}

// deploy applies a new version of the Deployment: serin holds it and
// starts a release.
func (r *release) deploy(version string) {
	r.t.Helper()
	r.kubectlApply(harness.PodinfoDeployment(r.ns, version, 3, ""))
}

func (r *release) kubectlApply(manifest string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.e.c.Kubectl(ctx, manifest, "apply", "-f", "-"); err != nil {
		r.t.Fatal(err)
	}
}

func (r *release) kubectl(args ...string) string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := r.e.c.Kubectl(ctx, "", append(args, "-n", r.ns)...)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// canary reads the Canary from the API server.
func (r *release) canary() *v1alpha1.Canary {
	r.t.Helper()
	var c v1alpha1.Canary
	if err := r.e.kube.Get(context.Background(), client.ObjectKey{Namespace: r.ns, Name: "podinfo"}, &c); err != nil {
		r.t.Fatal(err)
	}
	return &c
}

// waitFor polls the Canary until cond holds, logging every change of
// phase, weight and message.
func (r *release) waitFor(what string, timeout time.Duration, cond func(*v1alpha1.Canary) bool) *v1alpha1.Canary {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		var c v1alpha1.Canary
		err := r.e.kube.Get(context.Background(), client.ObjectKey{Namespace: r.ns, Name: "podinfo"}, &c)
		if err == nil {
			if s := summary(&c); s != last {
				r.t.Logf("%s canary: %s", time.Now().Format("15:04:05.000"), s)
				last = s
			}
			if cond(&c) {
				return &c
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("waiting for %s: timed out; last status: %s (err %v)", what, last, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func summary(c *v1alpha1.Canary) string {
	s := fmt.Sprintf("phase=%s weight=%d matching=%t", c.Status.Phase, c.Status.CanaryWeight, c.Status.Matching)
	if cond := apimeta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionTrafficApplied); cond != nil {
		s += fmt.Sprintf(" trafficApplied=%s(%s: %s)", cond.Status, cond.Reason, cond.Message)
	}
	if c.Status.Message != "" {
		s += " message=" + c.Status.Message
	}
	return s
}

// trafficApplied reports whether status says every proxy applied weight w.
func trafficApplied(c *v1alpha1.Canary, w int32) bool {
	cond := apimeta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionTrafficApplied)
	return c.Status.CanaryWeight == w && cond != nil && cond.Status == "True" &&
		strings.HasSuffix(cond.Message, fmt.Sprintf("applied weight %d", w))
}

// waitHeldAt waits until the release is progressing at weight w, applied
// by the data plane (the closed gate holds the next step).
func (r *release) waitHeldAt(w int32) *v1alpha1.Canary {
	r.t.Helper()
	return r.waitFor(fmt.Sprintf("weight %d applied", w), r.applyWait(), func(c *v1alpha1.Canary) bool {
		return trafficApplied(c, w) && (c.Status.Phase == v1alpha1.PhaseProgressing || c.Status.Phase == v1alpha1.PhaseWaitingPromotion)
	})
}

// step opens the gate for exactly one step: it waits for the weight to
// change, closes the gate at once, then waits for the data plane to apply
// the new weight and checks that no second step slipped through.
func (r *release) step(w int32) {
	r.t.Helper()
	r.e.gate(r.t, "/gate/open", r.ns)
	r.waitFor(fmt.Sprintf("weight %d", w), time.Minute, func(c *v1alpha1.Canary) bool { return c.Status.CanaryWeight != 0 && c.Status.CanaryWeight >= w })
	r.e.gate(r.t, "/gate/close", r.ns)
	c := r.waitHeldAt(w)
	if c.Status.CanaryWeight != w {
		r.t.Fatalf("weight went past %d to %d while the gate was open", w, c.Status.CanaryWeight)
	}
}

// waitCanaryServing waits until podsim serves n canary pods (and no more
// than n), so that weights are measured against live canary endpoints.
func (r *release) waitCanaryServing(n int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := r.sim.WaitFor(ctx, func(addrs []podsim.PodAddr) bool {
		got := 0
		for _, a := range addrs {
			if a.Protocol == podsim.ProtocolGRPC && strings.HasPrefix(a.Name, "podinfo-canary-") {
				got++
			}
		}
		return got == n
	})
	if err != nil {
		r.t.Fatalf("waiting for %d canary pods to serve: %v", n, err)
	}
}

// warnings lists the notes of the Warning events on the Canary with the
// given reason.
func (r *release) warnings(reason string) []string {
	r.t.Helper()
	list, err := r.e.cs.EventsV1().Events(r.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	var notes []string
	for _, ev := range list.Items {
		if ev.Regarding.Kind == "Canary" && ev.Type == "Warning" && ev.Reason == reason {
			notes = append(notes, ev.Note)
		}
	}
	return notes
}

// applyWait bounds the wait for the data plane to apply a step.
func (r *release) applyWait() time.Duration {
	if r.slowApply {
		return 3 * time.Minute
	}
	return time.Minute
}
