package rollout

import (
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The edges of a release: what happens when things change under it.

// TestStepNewRevisionDuringPromotion applies a new revision at each point
// of a promotion: the release restarts on it, no traffic stays on the copy
// of the superseded revision, and it ends promoted on the newest.
func TestStepNewRevisionDuringPromotion(t *testing.T) {
	points := map[string]func(w *world) bool{
		"while the copy scales up": func(w *world) bool { return w.status.Phase == v1alpha1.PhasePromoting },
		"after the cut-over":       func(w *world) bool { return w.status.Phase == v1alpha1.PhasePromoting && w.status.CanaryWeight == 100 },
		"while the Deployment rolls": func(w *world) bool {
			return w.status.Phase == v1alpha1.PhasePromoting && !w.target.Paused && w.target.Stable == "v2"
		},
	}
	for name, reached := range points {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, weightedSpec())
			w.initialized()
			w.apply("v2")
			w.run(100, 20*time.Second, func() bool { return reached(w) })
			w.apply("v3")
			w.step(time.Second)
			if w.status.Phase != v1alpha1.PhaseProgressing || w.status.CanaryRevision != "v3" || w.status.CanaryWeight != 0 {
				t.Fatalf("after v3: phase %s revision %s weight %d", w.status.Phase, w.status.CanaryRevision, w.status.CanaryWeight)
			}
			w.run(200, 20*time.Second, w.phase(v1alpha1.PhaseSucceeded))
			if w.target.Stable != "v3" || w.status.StableRevision != "v3" || w.copy.Exists || w.target.Paused {
				t.Fatalf("after promotion: target %+v status %+v copy %+v", w.target, w.status, w.copy)
			}
		})
	}
}

// TestStepAbortDuringPromotion rolls back from Promoting and leaves the
// Deployment paused on the aborted template.
func TestStepAbortDuringPromotion(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.initialized()
	w.apply("v2")
	w.run(100, 20*time.Second, func() bool { return w.status.Phase == v1alpha1.PhasePromoting && w.status.CanaryWeight == 100 })
	w.action = "abort/1"
	w.step(time.Second)
	if w.status.Phase != v1alpha1.PhaseFailed || w.status.CanaryWeight != 0 || !w.target.Paused {
		t.Fatalf("abort during promotion: phase %s weight %d target %+v", w.status.Phase, w.status.CanaryWeight, w.target)
	}
	c := apimeta.FindStatusCondition(w.status.Conditions, v1alpha1.ConditionManualAction)
	if c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("ManualAction condition %+v", c)
	}
	w.run(10, time.Second, func() bool { return !w.copy.Exists })
}

// TestStepPromotionDeadline rolls back a promotion whose Deployment never
// finishes rolling out.
func TestStepPromotionDeadline(t *testing.T) {
	spec := weightedSpec()
	spec.ProgressDeadlineSeconds = new(int32)
	*spec.ProgressDeadlineSeconds = 120
	w := newWorld(t, spec)
	w.initialized()
	w.apply("v2")
	w.run(100, 20*time.Second, func() bool { return w.status.Phase == v1alpha1.PhasePromoting && w.status.CanaryWeight == 100 })
	w.stuckRollout = true
	w.run(30, 20*time.Second, w.phase(v1alpha1.PhaseFailed))
	if !strings.Contains(w.status.Message, "progress deadline") || w.status.CanaryWeight != 0 || !w.target.Paused {
		t.Fatalf("deadline in promotion: %+v target %+v", w.status, w.target)
	}
}

// TestStepRestartBehindClosedGate: a newer revision restarts a release
// while confirm-rollout is closed; the old copy gets no traffic meanwhile.
func TestStepRestartBehindClosedGate(t *testing.T) {
	spec := weightedSpec()
	spec.Analysis.Webhooks = []v1alpha1.CanaryWebhook{{Name: "gate", Type: v1alpha1.HookConfirmRollout, URL: "http://gate/"}}
	w := newWorld(t, spec)
	w.hooks[v1alpha1.HookConfirmRollout] = true
	w.initialized()
	w.apply("v2")
	w.run(50, 20*time.Second, func() bool { return w.status.CanaryWeight == 30 })
	w.hooks[v1alpha1.HookConfirmRollout] = false
	w.apply("v3")
	w.step(time.Second)
	if w.status.Phase != v1alpha1.PhaseWaiting || w.status.CanaryWeight != 0 || w.status.CanaryRevision != "v3" {
		t.Fatalf("behind a closed gate: phase %s weight %d revision %s", w.status.Phase, w.status.CanaryWeight, w.status.CanaryRevision)
	}
	w.run(10, time.Second, func() bool { return !w.copy.Exists })
	w.hooks[v1alpha1.HookConfirmRollout] = true
	w.run(200, 20*time.Second, w.phase(v1alpha1.PhaseSucceeded))
	if w.target.Stable != "v3" {
		t.Fatalf("promoted %s", w.target.Stable)
	}
}

// TestStepActionsRefused: an action that cannot be acted on in the phase is
// refused with a reason in status and an event, never dropped.
func TestStepActionsRefused(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.initialized()
	w.action = "abort/1"
	w.step(time.Second)
	c := apimeta.FindStatusCondition(w.status.Conditions, v1alpha1.ConditionManualAction)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "Refused" || !strings.Contains(c.Message, "no release in progress") {
		t.Fatalf("ManualAction condition %+v", c)
	}
	w.hasEvents(t, "Manual abort of podinfo.test refused")
	w.apply("v2")
	w.run(10, time.Minute, func() bool { return w.status.CanaryWeight == 10 })
	w.action = "retry/2"
	w.step(time.Second)
	if c := apimeta.FindStatusCondition(w.status.Conditions, v1alpha1.ConditionManualAction); !strings.Contains(c.Message, "only a failed release can be retried") {
		t.Fatalf("retry while progressing: %+v", c)
	}
}

// TestStepTerminatingWithoutACKs: a proxy that never confirms weight 0
// keeps neither the copy nor the Canary past the progress deadline.
func TestStepTerminatingWithoutACKs(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.initialized()
	w.apply("v2")
	w.run(10, time.Minute, func() bool { return w.status.CanaryWeight == 20 })
	w.rejected = "stuck" // no ACK arrives any more
	w.deleting, w.revert = true, true
	w.run(40, time.Minute, func() bool { return w.finalized })
	if w.copy.Exists || w.status.Phase != v1alpha1.PhaseTerminated {
		t.Fatalf("terminated with copy %+v phase %s", w.copy, w.status.Phase)
	}
}

// TestStepNoProxies says so when nobody applies the traffic, and waits for
// spec.minProxies proxies when it is set.
func TestStepNoProxies(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.proxies = new(int)
	w.initialized()
	c := apimeta.FindStatusCondition(w.status.Conditions, v1alpha1.ConditionTrafficApplied)
	if c == nil || c.Reason != "NoProxies" || c.Status != metav1.ConditionTrue {
		t.Fatalf("TrafficApplied %+v", c)
	}
	n := 0
	for _, e := range w.events {
		if strings.Contains(e, "No proxy applies the traffic") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d NoProxies events, want 1: %q", n, w.events)
	}

	spec := weightedSpec()
	spec.MinProxies = new(int32)
	*spec.MinProxies = 1
	w = newWorld(t, spec)
	w.proxies = new(int)
	for range 5 {
		w.step(time.Second)
	}
	if w.status.Phase != v1alpha1.PhaseInitializing {
		t.Fatalf("initialized with no proxies and minProxies 1: %s", w.status.Phase)
	}
	c = apimeta.FindStatusCondition(w.status.Conditions, v1alpha1.ConditionTrafficApplied)
	if c == nil || c.Reason != "NoProxies" || c.Status != metav1.ConditionFalse {
		t.Fatalf("TrafficApplied %+v", c)
	}
	*w.proxies = 1
	w.initialized()
}
