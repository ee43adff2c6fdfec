package rollout

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// TestStepWeightWrittenOnce: a new weight is written with the message the
// wait for the data plane keeps, so the reconciles until the proxies ACK
// it leave the status as it is (the reconciler writes nothing).
func TestStepWeightWrittenOnce(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.initialized()
	w.apply("v2")
	w.stepUntil(100, 20*time.Second, func() bool { return w.status.CanaryWeight == 10 && w.acked.weight == 10 })
	w.ackDelay = 3
	w.stepUntil(100, 20*time.Second, func() bool { return w.status.CanaryWeight == 20 })
	written := *w.status.DeepCopy()
	w.step(time.Second)
	if w.acked.weight == 20 {
		t.Fatal("the data plane ACKed at once; the test needs a wait")
	}
	if !equality.Semantic.DeepEqual(written, w.status) {
		t.Errorf("status changed while waiting for the data plane: message %q → %q", written.Message, w.status.Message)
	}
}

// TestStepKeepsTheLoadCheckpoint: the counts a check's verdict carries are
// kept in status for the next check, and a new release starts without.
func TestStepKeepsTheLoadCheckpoint(t *testing.T) {
	w := newWorld(t, weightedSpec())
	checks := int64(0)
	w.verdict = func(*world) Verdict {
		checks++
		return Verdict{Decision: Promote, Message: "all checks passed",
			Checkpoint: &v1alpha1.LoadCheckpoint{Canary: v1alpha1.LoadTrackCounts{Requests: checks}}}
	}
	w.initialized()
	w.apply("v2")
	w.stepUntil(200, 10*time.Second, func() bool { return checks >= 2 })
	if cp := w.status.LoadCheckpoint; cp == nil || cp.Canary.Requests != checks {
		t.Fatalf("after %d checks the status keeps checkpoint %+v", checks, cp)
	}
	w.apply("v3")
	w.stepUntil(20, time.Second, func() bool { return w.status.CanaryRevision == "v3" })
	if w.status.LoadCheckpoint != nil {
		t.Fatalf("a new release kept the last one's checkpoint: %+v", w.status.LoadCheckpoint)
	}
}

// TestStepCopyScalingBetweenChecks: a copy scaling up for the next weight
// leaves the status alone until the next check is due; then the release
// says it waits for the copy.
func TestStepCopyScalingBetweenChecks(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.initialized()
	w.apply("v2")
	w.stepUntil(100, time.Second, func() bool { return w.status.CanaryWeight == 10 && w.acked.weight == 10 })
	w.step(time.Second)
	written := *w.status.DeepCopy()
	w.copy.Ready, w.copyScaling = false, true
	w.step(10 * time.Second)
	if !equality.Semantic.DeepEqual(written, w.status) {
		t.Fatalf("the status changed while the copy scaled between checks: message %q → %q", written.Message, w.status.Message)
	}
	w.step(time.Minute)
	w.step(0)
	if !strings.Contains(w.status.Message, "waiting for deployment podinfo-canary.test to be ready") || w.status.CanaryWeight != 10 {
		t.Fatalf("a due step with the copy not ready: weight %d, message %q", w.status.CanaryWeight, w.status.Message)
	}
}
