package analysis

import (
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// TestNoTraffic: a canary nobody calls is NoData — the release waits and
// says so, counts no failed check and does not fail before its progress
// deadline; after it, it fails with a message that says there was no
// traffic.
func (e *env) testNoTraffic(t *testing.T) {
	const deadline = 15 * time.Second
	a := e.newApp(t, `
progressDeadlineSeconds: 15
analysis:
  interval: 2s
  threshold: 1
  stepWeight: 20
  maxWeight: 60
  metrics:
  - name: request-success-rate
    thresholdRange: {min: 99}
  - name: request-duration
    thresholdRange: {max: 500}
`)
	w := a.watch()
	start := time.Now()
	a.deploy("2.0.0", nil)
	st := a.waitPhase(v1alpha1.PhaseFailed, 90*time.Second)
	failedAt := time.Now() // within the 100ms waitPhase polls at

	// The deadline counts from when the data plane applied the first weight.
	var stepStart time.Time
	waited := 0
	for _, s := range w.since(start) {
		if stepStart.IsZero() && s.status.StepStartTime != nil {
			stepStart = s.status.StepStartTime.Time
		}
		if s.status.FailedChecks != 0 {
			t.Errorf("a check failed without traffic: %s", s)
		}
		if s.status.Phase == v1alpha1.PhaseProgressing && strings.HasPrefix(s.status.LastVerdict, "NoData") {
			waited++
		}
		if strings.HasPrefix(s.status.LastVerdict, "Promote") {
			t.Errorf("a check passed without traffic: %s", s)
		}
	}
	if stepStart.IsZero() {
		t.Fatal("the release never applied a weight")
	}
	if waited == 0 {
		t.Error("no NoData verdict was seen while the release waited")
	}
	// Status timestamps have second precision: allow one second.
	if early := failedAt.Sub(stepStart); early < deadline-time.Second {
		t.Errorf("failed %s after the weight was applied, before the %s deadline", early, deadline)
	}
	if st.CanaryWeight != 0 || !strings.Contains(st.Message, "no traffic") {
		t.Errorf("failed with weight %d, message %q; want weight 0 and a message saying there was no traffic", st.CanaryWeight, st.Message)
	}
	if !a.hasEvent("no data to judge yet", "waiting") {
		t.Error("no event said the release was waiting for traffic")
	}
	t.Logf("failed %s after the weight was applied: %s", failedAt.Sub(stepStart).Round(100*time.Millisecond), st.Message)
}
