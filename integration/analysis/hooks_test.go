package analysis

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/harness"
)

// TestGates: confirm-rollout and confirm-promotion gates on `serin tester`
// hold the release until they are opened with /gate/open, as with
// Flagger's load tester.
func (e *env) testGates(t *testing.T) {
	tt := harness.StartTester(t)
	a := e.newApp(t, fmt.Sprintf(`
progressDeadlineSeconds: 60
analysis:
  interval: 1s
  threshold: 2
  stepWeight: 25
  maxWeight: 50
  webhooks:
  - {name: start-gate, type: confirm-rollout, url: %[1]s/gate/check}
  - {name: promotion-gate, type: confirm-promotion, url: %[1]s/rollback/check}
`, tt.URL))
	w := a.watch()
	a.startLoad(20)
	if code := tt.Post(t, "/gate/check", appName, a.ns); code != http.StatusForbidden {
		t.Fatalf("/gate/check of a new gate answered %d, want 403 (closed)", code)
	}

	a.deploy("2.0.0", nil)
	st := a.waitPhase(v1alpha1.PhaseWaiting, 30*time.Second)
	if st.CanaryWeight != 0 {
		t.Fatalf("waiting for confirm-rollout at weight %d", st.CanaryWeight)
	}
	// Closed for a few intervals: the release does not start.
	time.Sleep(3 * time.Second)
	if c, err := a.canary(); err != nil || c.Status.Phase != v1alpha1.PhaseWaiting {
		t.Fatalf("the release moved on with the gate closed: %+v %v", c.Status, err)
	}
	if !a.hasEvent("waiting for approval") {
		t.Error("no event said the release waits for approval")
	}

	opened := time.Now()
	if code := tt.Post(t, "/gate/open", appName, a.ns); code != http.StatusAccepted {
		t.Fatalf("/gate/open answered %d", code)
	}
	a.waitPhase(v1alpha1.PhaseProgressing, 30*time.Second)
	// The promotion gate is the tester's second gate (its /rollback
	// endpoints, closed until opened), so it holds the promotion however
	// quickly the analysis gets there.
	st = a.waitPhase(v1alpha1.PhaseWaitingPromotion, 60*time.Second)
	if st.CanaryWeight != 50 {
		t.Errorf("waiting for promotion at weight %d, want 50", st.CanaryWeight)
	}
	time.Sleep(3 * time.Second)
	if c, err := a.canary(); err != nil || c.Status.Phase != v1alpha1.PhaseWaitingPromotion {
		t.Fatalf("promoted with the gate closed: %+v %v", c.Status, err)
	}
	if code := tt.Post(t, "/rollback/open", appName, a.ns); code != http.StatusAccepted {
		t.Fatalf("/rollback/open answered %d", code)
	}
	a.waitPhase(v1alpha1.PhaseSucceeded, 60*time.Second)
	for _, s := range w.since(opened) {
		if s.status.Phase == v1alpha1.PhaseWaiting {
			t.Errorf("back to Waiting after the gate opened: %s", s)
		}
	}
}

// TestRollbackHook: a rollback hook on `serin tester` rolls a healthy
// release back as soon as /rollback/open is called.
func (e *env) testRollbackHook(t *testing.T) {
	tt := harness.StartTester(t)
	a := e.newApp(t, fmt.Sprintf(`
progressDeadlineSeconds: 60
analysis:
  interval: 2s
  threshold: 5
  stepWeight: 10
  maxWeight: 60
  metrics:
  - name: request-success-rate
    thresholdRange: {min: 99}
  webhooks:
  - {name: manual-rollback, type: rollback, url: %s/rollback/check}
`, tt.URL))
	a.watch()
	a.startLoad(30)
	a.deploy("2.0.0", nil)
	// Let a few steps pass with the gate closed.
	if _, err := a.waitFor(60*time.Second, func(st v1alpha1.CanaryStatus) (bool, error) {
		if st.Phase == v1alpha1.PhaseFailed || st.Phase == v1alpha1.PhaseSucceeded {
			return false, fmt.Errorf("release ended early: %s %s", st.Phase, st.Message)
		}
		return st.CanaryWeight >= 20, nil
	}); err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	if code := tt.Post(t, "/rollback/open", appName, a.ns); code != http.StatusAccepted {
		t.Fatalf("/rollback/open answered %d", code)
	}
	st := a.waitPhase(v1alpha1.PhaseFailed, 30*time.Second)
	t.Logf("rolled back %s after /rollback/open: %s", time.Since(opened).Round(100*time.Millisecond), st.Message)
	if !strings.Contains(st.Message, "rollback hook") || st.FailedChecks != 0 {
		t.Errorf("rolled back with message %q and %d failed checks; want the rollback hook's doing", st.Message, st.FailedChecks)
	}
}
