package traffic

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/podsim"
)

// testRollback rolls a release back at weight 50 (the rollback hook of
// serin's tester) with calls flowing. serin deletes the canary copy only
// once every proxy has acknowledged weight 0, so no call started after the
// copy's deletion may reach the canary, and none may fail.
func testRollback(t *testing.T, e *env) {
	r := newRelease(t, e, grpcService, `    interval: 1s
    threshold: 2
    stepWeights: [50]
    webhooks:
    - {name: promotion-gate, type: confirm-promotion, url: "`+e.gates.URL+`/gate/check"}
    - {name: rollback-gate, type: rollback, url: "`+e.gates.URL+`/rollback/check"}
`)
	conn := r.client("rollback")
	r.deploy(v2)
	r.waitFor("weight 50 applied, promotion held", time.Minute, func(c *v1alpha1.Canary) bool {
		return trafficApplied(c, 50) && c.Status.Phase == v1alpha1.PhaseWaitingPromotion
	})
	r.waitCanaryServing(2)
	time.Sleep(200 * time.Millisecond)
	checkShare(t, "rollback_before", 50, send(conn, 1000))

	l := startLoad(conn, workers, 0)
	time.Sleep(300 * time.Millisecond)
	rolledBack := time.Now()
	r.e.gate(t, "/rollback/open", r.ns)

	// Watch for the rollback in status and for the copy's deletion.
	var failedAt, deletedAt time.Time
	canaryPodsAtDeletion := 0
	deadline := time.Now().Add(time.Minute)
	for deletedAt.IsZero() && time.Now().Before(deadline) {
		if failedAt.IsZero() {
			if c := r.canary(); c.Status.Phase == v1alpha1.PhaseFailed {
				failedAt = time.Now()
				t.Logf("rolled back: %s", summary(c))
			}
		}
		var d appsv1.Deployment
		err := e.kube.Get(context.Background(), client.ObjectKey{Namespace: r.ns, Name: "podinfo-canary"}, &d)
		if apierrors.IsNotFound(err) || err == nil && d.DeletionTimestamp != nil {
			deletedAt = time.Now()
			for _, a := range r.sim.Serving() {
				if a.Protocol == podsim.ProtocolGRPC && strings.HasPrefix(a.Name, "podinfo-canary-") {
					canaryPodsAtDeletion++
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if failedAt.IsZero() || deletedAt.IsZero() {
		l.Stop()
		t.Fatalf("rollback not seen (failed at %v, copy deleted at %v)", failedAt, deletedAt)
	}
	time.Sleep(1500 * time.Millisecond)
	rpcs := l.Stop()

	var before, afterDelete []rpc
	var lastCanary time.Time
	for _, c := range rpcs {
		if c.version == v2 && c.end.After(lastCanary) {
			lastCanary = c.end
		}
		switch {
		case c.start.Before(rolledBack):
			before = append(before, c)
		case c.start.After(deletedAt):
			afterDelete = append(afterDelete, c)
		}
	}
	all, pre, post := count(rpcs), count(before), count(afterDelete)
	t.Logf("calls during the rollback: %v; before it: %v; started after the copy's deletion: %v", all, pre, post)
	t.Logf("FIGURE rollback_status_to_copy_deletion_ms=%d", deletedAt.Sub(failedAt).Milliseconds())
	t.Logf("FIGURE rollback_last_canary_answer_before_copy_deletion_ms=%d", deletedAt.Sub(lastCanary).Milliseconds())
	t.Logf("FIGURE rollback_canary_pods_serving_at_copy_deletion=%d", canaryPodsAtDeletion)
	t.Logf("FIGURE rollback_calls_after_copy_deletion=%d canary=%d", post.Total, post.Versions[v2])
	if pre.Versions[v2] == 0 {
		t.Errorf("the canary took no calls before the rollback: %v", pre)
	}
	if all.Errors > 0 {
		t.Errorf("%d calls failed during the rollback, last: %v", all.Errors, all.LastErr)
	}
	if post.Total == 0 {
		t.Errorf("no calls were made after the copy's deletion")
	}
	if post.Versions[v2] > 0 {
		t.Errorf("%d calls started after the rollback was acknowledged (copy deleted) reached the canary", post.Versions[v2])
	}

	// With the copy gone, weight 0 holds for good.
	checkShare(t, "rollback_after", 0, send(conn, 2000))
	if c := r.canary(); c.Status.Phase != v1alpha1.PhaseFailed || c.Status.CanaryWeight != 0 {
		t.Errorf("after the rollback: %s", summary(c))
	}
}
