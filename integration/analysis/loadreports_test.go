package analysis

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// TestLoadReportsOnly: with Prometheus stopped, the data plane's load
// reports (grpc-go's LRS client reporting to serin) are enough to promote a
// healthy canary and to roll back one with 30% errors.
func (e *env) testLoadReportsOnly(t *testing.T) {
	a := e.newApp(t, `
progressDeadlineSeconds: 60
loadReports: {enabled: true}
analysis:
  interval: 2s
  threshold: 2
  stepWeight: 20
  maxWeight: 40
  metrics:
  - name: request-success-rate
    thresholdRange: {min: 99}
`)
	w := a.watch()
	l := a.startLoad(40)

	e.prom.Stop()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.prom.Start(ctx); err != nil {
			t.Errorf("restart Prometheus: %v", err)
		}
	})

	start := time.Now()
	a.deploy("2.0.0", nil)
	a.waitPhase(v1alpha1.PhaseSucceeded, 90*time.Second)
	passed := false
	for _, s := range w.since(start) {
		if strings.HasPrefix(s.status.LastVerdict, "Promote") && strings.Contains(sample(s.status.LastVerdict, "request-success-rate/canary"), "pass") &&
			strings.Contains(sample(s.status.LastVerdict, "request-success-rate/canary"), "from load-reports") {
			passed = true
		}
	}
	if !passed {
		t.Error("no check passed on load reports")
	}

	start = time.Now()
	a.deploy("3.0.0", map[string]string{"ERROR_RATE": "0.3"})
	st := a.waitPhase(v1alpha1.PhaseFailed, 90*time.Second)
	t.Logf("v3 rolled back in %s: %s (last verdict %s)", time.Since(start).Round(100*time.Millisecond), st.Message, st.LastVerdict)
	got := sample(st.LastVerdict, "request-success-rate/canary")
	if !strings.Contains(got, "(min 99%) fail") || !strings.Contains(got, "from load-reports") {
		t.Errorf("last verdict %q: want a failed success rate from load reports", st.LastVerdict)
	}
	if l.firstSeen("3.0.0").IsZero() {
		t.Error("v3 never received traffic")
	}
	if e.prom.Running() {
		t.Error("Prometheus ran during the test")
	}
	if n, err := e.serin.Metric("serin_xds_load_reports_total"); err != nil || n == 0 {
		t.Errorf("serin received %v load reports (%v)", n, err)
	}
}
