package rollout

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// TestStepReadyThresholds: a release takes its first check only once the
// canary copy runs the share of ready pods analysis.canaryReadyThreshold
// asks for (all by default), and the stable pods the share
// primaryReadyThreshold asks for (all by default); until then it waits
// without a verdict, a failed check or a weight step.
func TestStepReadyThresholds(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	// Four desired pods everywhere; ready counts vary.
	copyWith := func(ready int32) Copy {
		return Copy{Exists: true, Revision: "v2", Desired: 4, RolledOut: true, ReadyReplicas: ready, Ready: ready == 4}
	}
	stableWith := func(ready int32) Target {
		return Target{Found: true, TemplateHash: "v2", Candidate: "v2", Stable: "v1", Paused: true,
			Replicas: 4, ReadyReplicas: ready, Available: ready > 0, RolledOut: true}
	}
	tests := []struct {
		name            string
		canary, primary *int32
		copy            Copy
		target          Target
		// checks: Step goes on to the analysis (no wait on readiness);
		// otherwise wait is in its message.
		checks bool
		wait   string
	}{
		{name: "defaults, all ready", copy: copyWith(4), target: stableWith(4), checks: true},
		{name: "defaults, canary 3 of 4", copy: copyWith(3), target: stableWith(4), wait: "podinfo-canary.test to be ready"},
		{name: "defaults, stable 3 of 4", copy: copyWith(4), target: stableWith(3),
			wait: "3 of 4 stable pods ready, 4 needed (primaryReadyThreshold 100%)"},
		{name: "canary 50%, 2 of 4 ready", canary: ptrTo[int32](50), copy: copyWith(2), target: stableWith(4), checks: true},
		{name: "canary 51%, 2 of 4 ready: rounds up to 3", canary: ptrTo[int32](51), copy: copyWith(2), target: stableWith(4), wait: "podinfo-canary.test to be ready"},
		{name: "canary 50%, copy still has old pods", canary: ptrTo[int32](50),
			copy: Copy{Exists: true, Revision: "v2", Desired: 4, ReadyReplicas: 4}, target: stableWith(4), wait: "podinfo-canary.test to be ready"},
		{name: "primary 75%, 3 of 4 ready", primary: ptrTo[int32](75), copy: copyWith(4), target: stableWith(3), checks: true},
		{name: "primary 76%, 3 of 4 ready", primary: ptrTo[int32](76), copy: copyWith(4), target: stableWith(3),
			wait: "3 of 4 stable pods ready, 4 needed (primaryReadyThreshold 76%)"},
		{name: "primary 0%, none ready", primary: ptrTo[int32](0), copy: copyWith(4), target: stableWith(0), checks: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := weightedSpec()
			spec.Analysis.CanaryReadyThreshold, spec.Analysis.PrimaryReadyThreshold = tt.canary, tt.primary
			v1alpha1.SetDefaults(spec)
			status := v1alpha1.CanaryStatus{Phase: v1alpha1.PhaseProgressing, StableRevision: "v1", CanaryRevision: "v2",
				ReleaseStartTime: &metav1.Time{Time: now}, LastTransitionTime: metav1.Time{Time: now}}
			out := Step(Input{Name: "podinfo", Namespace: "test", Spec: spec, Status: status, Now: now.Add(time.Second),
				Obs: Observations{Target: tt.target, Copy: tt.copy, Traffic: Traffic{Applied: true, Proxies: 2}}})
			if tt.checks {
				if out.Needs == nil && strings.Contains(out.Status.Message, "ready") {
					t.Fatalf("want the analysis to go on, got message %q", out.Status.Message)
				}
				return
			}
			if out.Needs != nil {
				t.Fatalf("want a wait, Step needs %+v", out.Needs)
			}
			if !strings.Contains(out.Status.Message, tt.wait) || out.Status.CanaryWeight != 0 || out.Status.FailedChecks != 0 {
				t.Fatalf("got message %q weight %d failed %d, want a wait %q", out.Status.Message, out.Status.CanaryWeight, out.Status.FailedChecks, tt.wait)
			}
		})
	}
}

func TestReadyPodsNeeded(t *testing.T) {
	for _, tt := range []struct{ desired, pct, want int32 }{
		{4, 100, 4}, {4, 50, 2}, {4, 51, 3}, {3, 50, 2}, {1, 1, 1}, {0, 100, 0}, {10, 0, 0}, {7, 150, 7},
	} {
		if got := v1alpha1.ReadyPodsNeeded(tt.desired, tt.pct); got != tt.want {
			t.Errorf("ReadyPodsNeeded(%d, %d) = %d, want %d", tt.desired, tt.pct, got, tt.want)
		}
	}
}

// TestStepCutOverReadyThreshold: promotion routes all traffic to the copy
// once it runs as many ready pods as the stable and the share of its own
// canaryReadyThreshold asks for, not only once every pod of it is ready.
func TestStepCutOverReadyThreshold(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name      string
		threshold *int32
		ready     int32
		cut       bool
	}{
		{name: "default, 3 of 4 ready", ready: 3},
		{name: "75%, 3 of 4 ready", threshold: ptrTo[int32](75), ready: 3, cut: true},
		{name: "50%, 2 of 4 ready: fewer than the 3 stable pods", threshold: ptrTo[int32](50), ready: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := weightedSpec()
			spec.Analysis.CanaryReadyThreshold = tt.threshold
			v1alpha1.SetDefaults(spec)
			status := v1alpha1.CanaryStatus{Phase: v1alpha1.PhasePromoting, StableRevision: "v1", CanaryRevision: "v2", CanaryWeight: 50,
				ReleaseStartTime: &metav1.Time{Time: now}, LastTransitionTime: metav1.Time{Time: now}}
			out := Step(Input{Name: "podinfo", Namespace: "test", Spec: spec, Status: status, Now: now.Add(time.Second),
				Obs: Observations{
					Target:  Target{Found: true, TemplateHash: "v2", Candidate: "v2", Stable: "v1", Paused: true, Replicas: 3, ReadyReplicas: 3, Available: true, RolledOut: true},
					Copy:    Copy{Exists: true, Revision: "v2", Desired: 4, RolledOut: true, ReadyReplicas: tt.ready},
					Traffic: Traffic{Applied: true, Proxies: 2},
				}})
			if got := out.Status.CanaryWeight == 100; got != tt.cut {
				t.Fatalf("cut over: %v, want %v (weight %d, message %q)", got, tt.cut, out.Status.CanaryWeight, out.Status.Message)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }
