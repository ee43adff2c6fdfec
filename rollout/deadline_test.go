package rollout

import (
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// TestStepProgressDeadlineFromLastProgress: a release that has run longer
// than the progress deadline is not rolled back the moment its copy scales
// up for the next weight; a copy that stays unready for the deadline is.
func TestStepProgressDeadlineFromLastProgress(t *testing.T) {
	spec := weightedSpec()
	spec.ProgressDeadlineSeconds = ptr.To[int32](120)
	w := newWorld(t, spec)
	w.initialized()
	w.apply("v2")
	w.run(20, time.Minute, func() bool { return w.status.CanaryWeight >= 30 })
	if w.status.Phase != v1alpha1.PhaseProgressing || w.now.Sub(w.status.ReleaseStartTime.Time) <= 2*time.Minute {
		t.Fatalf("setup: want a release older than its deadline, got %s after %s", w.status.Phase, w.now.Sub(w.status.ReleaseStartTime.Time))
	}
	w.copy.Ready = false
	w.step(5 * time.Second)
	if w.status.Phase != v1alpha1.PhaseProgressing {
		t.Fatalf("rolled back as soon as the copy was not ready: %s %q", w.status.Phase, w.status.Message)
	}
	for range 4 {
		w.copy.Ready = false // EnsureCopy in the test world makes it ready again
		w.step(time.Minute)
	}
	if w.status.Phase != v1alpha1.PhaseFailed || !strings.Contains(w.status.Message, "not ready: progress deadline exceeded") {
		t.Fatalf("a copy unready for longer than the deadline must roll back: %s %q", w.status.Phase, w.status.Message)
	}
}
