package traffic

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The edges of a release, on the real cluster with a grpc-go xDS client
// as the data plane.

const v3 = "6.0.2"

// pickerDelay is how long after an ACK grpc-go may still use its previous
// picker (it installs the new one asynchronously).
const pickerDelay = 300 * time.Millisecond

// testCutover promotes a blue/green and an A/B release while calls flow.
// Promotion routes every call to the copy (scaled to the stable's size)
// before the Deployment rolls out, and back to the Deployment only once it
// has: after the cut-over no call reaches an old pod, and after the return
// no call reaches the copy.
func testCutover(t *testing.T, e *env) {
	gate := "    - {name: promotion-gate, type: confirm-promotion, url: \"" + e.gates.URL + "/gate/check\"}\n"
	for _, tc := range []struct{ name, analysis string }{
		{"BlueGreen", "    interval: 1s\n    threshold: 2\n    iterations: 2\n    webhooks:\n" + gate},
		{"AB", "    interval: 1s\n    threshold: 2\n    iterations: 1\n    match:\n    - headers:\n        x-canary: {exact: insider}\n    webhooks:\n" + gate},
	} {
		t.Run(tc.name, func(t *testing.T) { cutover(t, e, tc.analysis) })
	}
}

func cutover(t *testing.T, e *env, analysis string) {
	r := newRelease(t, e, grpcService, analysis)
	conn := r.client("cutover")
	r.deploy(v2)
	r.waitFor("analysis done, promotion held", time.Minute, func(c *v1alpha1.Canary) bool {
		return c.Status.Phase == v1alpha1.PhaseWaitingPromotion
	})
	l := startLoad(conn, 4, 2*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	r.e.gate(t, "/gate/open", r.ns)
	cutAt := r.waitFor("all traffic on the copy", time.Minute, func(c *v1alpha1.Canary) bool {
		return c.Status.Phase == v1alpha1.PhasePromoting && trafficApplied(c, 100)
	})
	cutSeen := time.Now()
	if n := r.copyReplicas(); n != 3 {
		t.Errorf("the copy serves all traffic with %d replicas, want the stable's 3", n)
	}
	// The window on the copy ends when the last read that was sent before
	// it saw the release still Promoting: the traffic returns to the
	// Deployment only after serin wrote Finalising, and a call that ended
	// before that read was sent cannot have been routed by it. (When the
	// test merely noticed Finalising, proxies may have had weight 0 for a
	// while already.)
	finSeen := r.promotingUntil(time.Minute)
	r.waitFor("succeeded", time.Minute, func(c *v1alpha1.Canary) bool { return c.Status.Phase == v1alpha1.PhaseSucceeded })
	doneSeen := time.Now()
	time.Sleep(time.Second)
	rpcs := l.Stop()
	t.Logf("cut over: %s", summary(cutAt))

	var during, after, failed int
	for _, c := range rpcs {
		switch {
		case c.err != nil:
			failed++
		case c.start.After(cutSeen.Add(pickerDelay)) && c.end.Before(finSeen):
			during++
			if !strings.HasPrefix(c.pod, "podinfo-canary-") || c.version != v2 {
				t.Errorf("after the cut-over, a call reached %s (%s), not the copy", c.pod, c.version)
			}
		case c.start.After(doneSeen.Add(pickerDelay)):
			after++
			if strings.HasPrefix(c.pod, "podinfo-canary-") || c.version != v2 {
				t.Errorf("after the return, a call reached %s (%s)", c.pod, c.version)
			}
		}
	}
	t.Logf("FIGURE cutover_calls_on_copy=%d cutover_calls_after_return=%d failed=%d total=%d", during, after, failed, len(rpcs))
	// The Deployment's rollout may be quicker than grpc-go's picker delay:
	// calls on the copy are required only when the window was long enough.
	if failed > 0 || after == 0 || during == 0 && finSeen.Sub(cutSeen) > 3*pickerDelay {
		t.Fatalf("calls: %d failed, %d checked on the copy, %d after the return", failed, during, after)
	}
}

// promotingUntil polls the Canary until it leaves Promoting and returns
// the send time of the last read that still saw it Promoting.
func (r *release) promotingUntil(timeout time.Duration) time.Time {
	r.t.Helper()
	var until time.Time
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		sent := time.Now()
		var c v1alpha1.Canary
		if err := r.e.kube.Get(context.Background(), client.ObjectKey{Namespace: r.ns, Name: "podinfo"}, &c); err == nil {
			switch c.Status.Phase {
			case v1alpha1.PhasePromoting:
				until = sent
			case v1alpha1.PhaseFinalising, v1alpha1.PhaseSucceeded:
				if until.IsZero() {
					r.t.Fatal("the release was not seen Promoting")
				}
				return until
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Fatalf("the release did not leave Promoting within %s", timeout)
	return until
}

// copyReplicas is the canary copy's desired replicas.
func (r *release) copyReplicas() int32 {
	r.t.Helper()
	var d appsv1.Deployment
	if err := r.e.kube.Get(context.Background(), client.ObjectKey{Namespace: r.ns, Name: "podinfo-canary"}, &d); err != nil {
		r.t.Fatal(err)
	}
	return *d.Spec.Replicas
}

// copyGone waits until the canary copy is deleted.
func (r *release) copyGone() {
	r.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var d appsv1.Deployment
		err := r.e.kube.Get(context.Background(), client.ObjectKey{Namespace: r.ns, Name: "podinfo-canary"}, &d)
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the canary copy is still there: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testNewRevisionDuringPromotion applies a third revision while the second
// is promoting: the release restarts on the newest revision and is
// promoted, instead of staying in Promoting forever.
func testNewRevisionDuringPromotion(t *testing.T, e *env) {
	r := newRelease(t, e, grpcService, `    interval: 1s
    threshold: 2
    stepWeights: [50]
    webhooks:
    - {name: promotion-gate, type: confirm-promotion, url: "`+e.gates.URL+`/gate/check"}
`)
	conn := r.client("newrev")
	r.deploy(v2)
	r.waitFor("promotion held", time.Minute, func(c *v1alpha1.Canary) bool { return c.Status.Phase == v1alpha1.PhaseWaitingPromotion })
	first := r.canary().Status.CanaryRevision
	r.e.gate(t, "/gate/open", r.ns)
	r.waitFor("promoting", time.Minute, func(c *v1alpha1.Canary) bool { return c.Status.Phase == v1alpha1.PhasePromoting })
	r.deploy(v3)
	c := r.waitFor("restarted on the newest revision", time.Minute, func(c *v1alpha1.Canary) bool {
		return c.Status.CanaryRevision != "" && c.Status.CanaryRevision != first
	})
	t.Logf("restarted: %s", summary(c))
	r.waitFor("newest revision promoted", 2*time.Minute, func(c *v1alpha1.Canary) bool {
		return c.Status.Phase == v1alpha1.PhaseSucceeded && c.Status.StableRevision != first
	})
	r.copyGone()
	var d appsv1.Deployment
	if err := r.e.kube.Get(context.Background(), client.ObjectKey{Namespace: r.ns, Name: "podinfo"}, &d); err != nil {
		t.Fatal(err)
	}
	if d.Spec.Paused {
		t.Fatalf("the Deployment stayed paused after the newest revision was promoted")
	}
	time.Sleep(pickerDelay)
	tl := send(conn, 300)
	if tl.Errors > 0 || tl.Versions[v3] != tl.Total {
		t.Fatalf("after promoting %s: %v", v3, tl)
	}
}

// testRestartBehindClosedGate: a newer revision restarts a release at
// weight 50 while confirm-rollout is closed. The release waits for
// approval with weight 0 (no call reaches the copy of the superseded
// revision), then releases the newest revision once approved.
func testRestartBehindClosedGate(t *testing.T, e *env) {
	r := newRelease(t, e, grpcService, `    interval: 1s
    threshold: 2
    stepWeights: [50]
    webhooks:
    - {name: rollout-gate, type: confirm-rollout, url: "`+e.gates.URL+`/gate/check"}
    - {name: promotion-gate, type: confirm-promotion, url: "`+e.gates.URL+`/rollback/check"}
`)
	conn := r.client("gated")
	r.e.gate(t, "/gate/open", r.ns)
	r.deploy(v2)
	r.waitFor("weight 50 applied", time.Minute, func(c *v1alpha1.Canary) bool { return trafficApplied(c, 50) })
	r.e.gate(t, "/gate/close", r.ns)
	r.deploy(v3)
	r.waitFor("waiting for approval at weight 0", time.Minute, func(c *v1alpha1.Canary) bool {
		return c.Status.Phase == v1alpha1.PhaseWaiting && trafficApplied(c, 0)
	})
	time.Sleep(pickerDelay)
	if tl := send(conn, 300); tl.Errors > 0 || tl.Versions[v1] != tl.Total {
		t.Fatalf("waiting for approval: %v, want every call on stable %s", tl, v1)
	}
	r.copyGone()
	r.e.gate(t, "/gate/open", r.ns)
	r.waitFor("newest revision progressing", time.Minute, func(c *v1alpha1.Canary) bool {
		return c.Status.Phase == v1alpha1.PhaseWaitingPromotion && trafficApplied(c, 50)
	})
	r.waitCanaryServing(2)
	time.Sleep(pickerDelay)
	if tl := send(conn, 300); tl.Errors > 0 || tl.Versions[v2] > 0 || tl.Versions[v3] == 0 {
		t.Fatalf("the restarted release serves %v; want %s and %s only", tl, v1, v3)
	}
}

// testNoProxies: a release nobody subscribes to proceeds, and its
// TrafficApplied condition and one event say that no proxy applies it.
func testNoProxies(t *testing.T, e *env) {
	r := newRelease(t, e, grpcService, "    interval: 1s\n    threshold: 2\n    stepWeights: [50]\n")
	c := r.canary()
	cond := apimeta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionTrafficApplied)
	if cond == nil || cond.Reason != "NoProxies" || cond.Status != "True" {
		t.Fatalf("TrafficApplied with no proxy: %+v", cond)
	}
	// Events are written asynchronously: wait for it, then make sure it
	// stays one.
	deadline := time.Now().Add(15 * time.Second)
	for len(r.warnings("NoProxies")) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if w := r.warnings("NoProxies"); len(w) != 1 {
		t.Fatalf("NoProxies events %q, want one", w)
	}
}

// testDeleteMidRelease deletes the Deployment, then the Canary, in the
// middle of a release with a proxy connected: the copy goes, weight 0 is
// served, and the Canary is gone in bounded time with nothing left.
func testDeleteMidRelease(t *testing.T, e *env) {
	r := newRelease(t, e, grpcService, `    interval: 1s
    threshold: 2
    stepWeights: [50]
    webhooks:
    - {name: promotion-gate, type: confirm-promotion, url: "`+e.gates.URL+`/gate/check"}
`)
	// A proxy stays subscribed throughout.
	r.client("delete")
	r.deploy(v2)
	r.waitFor("weight 50 applied", time.Minute, func(c *v1alpha1.Canary) bool { return trafficApplied(c, 50) })
	start := time.Now()
	r.kubectl("delete", "deployment", "podinfo", "--wait=false")
	r.waitFor("weight 0 without a Deployment", time.Minute, func(c *v1alpha1.Canary) bool { return trafficApplied(c, 0) })
	r.copyGone()
	t.Logf("FIGURE delete_target_to_copy_gone_seconds=%.1f", time.Since(start).Seconds())
	start = time.Now()
	r.kubectl("delete", "canary", "podinfo", "--wait=true", "--timeout=60s")
	t.Logf("FIGURE delete_canary_seconds=%.1f", time.Since(start).Seconds())
	var list appsv1.DeploymentList
	if err := r.e.kube.List(context.Background(), &list, client.InNamespace(r.ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Fatalf("left behind: %d Deployments", len(list.Items))
	}
}
