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
	pct := func(v int32) *int32 { return &v }
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
		{name: "canary 50%, 2 of 4 ready", canary: pct(50), copy: copyWith(2), target: stableWith(4), checks: true},
		{name: "canary 51%, 2 of 4 ready: rounds up to 3", canary: pct(51), copy: copyWith(2), target: stableWith(4), wait: "podinfo-canary.test to be ready"},
		{name: "canary 50%, copy still has old pods", canary: pct(50),
			copy: Copy{Exists: true, Revision: "v2", Desired: 4, ReadyReplicas: 4}, target: stableWith(4), wait: "podinfo-canary.test to be ready"},
		{name: "primary 75%, 3 of 4 ready", primary: pct(75), copy: copyWith(4), target: stableWith(3), checks: true},
		{name: "primary 76%, 3 of 4 ready", primary: pct(76), copy: copyWith(4), target: stableWith(3),
			wait: "3 of 4 stable pods ready, 4 needed (primaryReadyThreshold 76%)"},
		{name: "primary 0%, none ready", primary: pct(0), copy: copyWith(4), target: stableWith(0), checks: true},
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
