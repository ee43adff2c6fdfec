package analysis

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

// tester is a `serin tester` process.
type tester struct {
	url string
}

// startTester runs the real `serin tester` binary on a free port until the
// test ends.
func startTester(t *testing.T) *tester {
	t.Helper()
	bin, err := harness.Binary()
	if err != nil {
		t.Fatal(err)
	}
	ports, err := cluster.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	proc, err := cluster.StartProcess("serin tester", bin, []string{"tester", "--address", addr, "--log-format", "console", "--timeout", "1m"},
		cluster.ProcessOptions{Log: filepath.Join(t.TempDir(), "tester.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Stop(10 * time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(proc.LogPath)
			t.Logf("serin tester log:\n%s", b)
		}
	})
	tt := &tester{url: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(tt.url + "/healthz") //nolint:noctx // local probe
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return tt
			}
		}
		select {
		case <-proc.Done():
			b, _ := os.ReadFile(proc.LogPath)
			t.Fatalf("serin tester exited:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("serin tester not ready after 30s")
		}
	}
}

// post calls a tester endpoint for the Canary, as a person would with
// curl, and returns the status code.
func (tt *tester) post(t *testing.T, path, ns string) int {
	t.Helper()
	body := fmt.Sprintf(`{"name":%q,"namespace":%q}`, appName, ns)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, tt.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestGates: confirm-rollout and confirm-promotion gates on `serin tester`
// hold the release until they are opened with /gate/open, as with
// Flagger's load tester.
func (e *env) testGates(t *testing.T) {
	tt := startTester(t)
	a := e.newApp(t, fmt.Sprintf(`
progressDeadlineSeconds: 60
analysis:
  interval: 1s
  threshold: 2
  stepWeight: 25
  maxWeight: 50
  webhooks:
  - {name: start-gate, type: confirm-rollout, url: %[1]s/gate/check}
  - {name: promotion-gate, type: confirm-promotion, url: %[1]s/gate/check}
`, tt.url))
	w := a.watch()
	a.startLoad(20)
	if code := tt.post(t, "/gate/check", a.ns); code != http.StatusForbidden {
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
	if code := tt.post(t, "/gate/open", a.ns); code != http.StatusAccepted {
		t.Fatalf("/gate/open answered %d", code)
	}
	a.waitPhase(v1alpha1.PhaseProgressing, 30*time.Second)
	if code := tt.post(t, "/gate/close", a.ns); code != http.StatusAccepted {
		t.Fatalf("/gate/close answered %d", code)
	}
	st = a.waitPhase(v1alpha1.PhaseWaitingPromotion, 60*time.Second)
	if st.CanaryWeight != 50 {
		t.Errorf("waiting for promotion at weight %d, want 50", st.CanaryWeight)
	}
	time.Sleep(3 * time.Second)
	if c, err := a.canary(); err != nil || c.Status.Phase != v1alpha1.PhaseWaitingPromotion {
		t.Fatalf("promoted with the gate closed: %+v %v", c.Status, err)
	}
	if code := tt.post(t, "/gate/open", a.ns); code != http.StatusAccepted {
		t.Fatalf("/gate/open answered %d", code)
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
	tt := startTester(t)
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
`, tt.url))
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
	if code := tt.post(t, "/rollback/open", a.ns); code != http.StatusAccepted {
		t.Fatalf("/rollback/open answered %d", code)
	}
	st := a.waitPhase(v1alpha1.PhaseFailed, 30*time.Second)
	t.Logf("rolled back %s after /rollback/open: %s", time.Since(opened).Round(100*time.Millisecond), st.Message)
	if !strings.Contains(st.Message, "rollback hook") || st.FailedChecks != 0 {
		t.Errorf("rolled back with message %q and %d failed checks; want the rollback hook's doing", st.Message, st.FailedChecks)
	}
}
