package analysis

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// flaggerSpec is a release slow enough for Prometheus (scraping every
// second) to see it under way.
const flaggerSpec = `
progressDeadlineSeconds: 60
analysis:
  interval: 2s
  threshold: 2
  stepWeight: 10
  maxWeight: 50
  metrics:
  - name: request-success-rate
    thresholdRange: {min: 99}
  - name: request-duration
    thresholdRange: {max: 500}
`

// TestFlaggerMetrics: with --flagger-metrics, the queries written for
// Flagger's metrics (its documented series, the aggregations dashboards
// and alerts make of them) answer on the real Prometheus scraping serin's
// /metrics: during a release the canary's weight and the primary's add up
// to 100 and the status says running; after the promotion the status is
// successful, the primary has all the traffic, the analysis durations are
// a histogram, the success rate is the last value analysed and one success
// is counted; after a rollback the status is failed and one failure is
// counted.
func (e *env) testFlaggerMetrics(t *testing.T) {
	a := e.newApp(t, flaggerSpec)
	a.startLoad(30)
	ns := a.ns
	sel := func(extra string) string { return fmt.Sprintf(`{namespace=%q%s}`, ns, extra) }
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	a.deploy("2.0.0", nil)
	// Prometheus sees the release under way.
	canaryWeight := "flagger_canary_weight" + sel(`,workload="podinfo"`)
	vec, err := e.prom.WaitFor(ctx, canaryWeight, func(v model.Vector) bool { return len(v) == 1 && v[0].Value > 0 })
	if err != nil {
		t.Fatal(err)
	}
	ts := vec[0].Timestamp.Time()
	e.expectAt(ctx, t, ts, "sum(flagger_canary_weight"+sel(`,workload=~"podinfo|podinfo-primary"`)+")", 100)
	e.expectAt(ctx, t, ts, "flagger_canary_status"+sel(`,name="podinfo"`), 0)
	a.waitPhase(v1alpha1.PhaseSucceeded, 90*time.Second)

	// Promoted: successful, all traffic on the primary.
	e.waitValue(ctx, t, "flagger_canary_status"+sel(`,name="podinfo"`), 1)
	e.waitValue(ctx, t, "flagger_canary_weight"+sel(`,workload="podinfo-primary"`), 100)
	e.waitValue(ctx, t, canaryWeight, 0)
	e.waitValue(ctx, t, "flagger_canary_total"+sel(""), 1)
	e.waitValue(ctx, t, "count(flagger_canary_status"+sel("")+")", 1)
	e.waitValue(ctx, t, `count(flagger_info{mesh_provider="serin"} == 1)`, 1)
	e.waitValue(ctx, t, "sum(flagger_canary_successes_total"+sel(`,name="podinfo",deployment_strategy="canary",analysis_status="completed"`)+")", 1)
	// Every weight step took a passing analysis step: five at least.
	e.waitCheck(ctx, t, "flagger_canary_duration_seconds_count"+sel(`,name="podinfo"`), func(v float64) bool { return v >= 5 })
	for _, q := range []string{
		"histogram_quantile(0.99, sum(rate(flagger_canary_duration_seconds_bucket" + sel("") + "[5m])) by (le))",
		"histogram_quantile(0.50, sum(rate(flagger_canary_duration_seconds_bucket" + sel(`,name="podinfo"`) + "[5m])) by (le))",
		"sum(rate(flagger_canary_duration_seconds_sum" + sel("") + "[5m])) / sum(rate(flagger_canary_duration_seconds_count" + sel("") + "[5m]))",
	} {
		// Seconds one analysis step took: Prometheus queries of a local
		// server, well inside the histogram's 10s top bucket.
		e.waitCheck(ctx, t, q, func(v float64) bool { return v > 0 && v < 10 })
	}
	e.waitCheck(ctx, t, "flagger_canary_metric_analysis"+sel(`,name="podinfo",metric="request-success-rate"`), func(v float64) bool { return v >= 99 && v <= 100 })
	e.waitCheck(ctx, t, "flagger_canary_metric_analysis"+sel(`,name="podinfo",metric="request-duration"`), func(v float64) bool { return v > 0 && v <= 500 })

	// A failing version: rolled back, the status says failed.
	a.deploy("3.0.0", map[string]string{"ERROR_RATE": "0.3"})
	a.waitPhase(v1alpha1.PhaseFailed, 90*time.Second)
	e.waitValue(ctx, t, "sum(flagger_canary_status"+sel("")+")", 2)
	e.waitValue(ctx, t, "count(flagger_canary_status"+sel("")+" == 2)", 1)
	e.waitValue(ctx, t, "sum(flagger_canary_failures_total"+sel(`,name="podinfo"`)+")", 1)
	e.waitValue(ctx, t, canaryWeight, 0)
	e.waitCheck(ctx, t, "flagger_canary_metric_analysis"+sel(`,name="podinfo",metric="request-success-rate"`), func(v float64) bool { return v < 99 })
}

// expectAt evaluates q at ts (the same evaluation as another answer) and
// wants one sample equal to want.
func (e *env) expectAt(ctx context.Context, t *testing.T, ts time.Time, q string, want float64) {
	t.Helper()
	v, _, err := e.prom.API().Query(ctx, q, ts)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 1 || float64(vec[0].Value) != want {
		t.Errorf("%s at %s = %v, want %v", q, ts.Format(time.RFC3339Nano), v, want)
	}
}

// waitValue waits until q answers one sample equal to want.
func (e *env) waitValue(ctx context.Context, t *testing.T, q string, want float64) {
	t.Helper()
	e.waitCheck(ctx, t, q, func(v float64) bool { return v == want })
}

// waitCheck waits until q answers one sample that ok accepts.
func (e *env) waitCheck(ctx context.Context, t *testing.T, q string, ok func(float64) bool) {
	t.Helper()
	vec, err := e.prom.WaitFor(ctx, q, func(v model.Vector) bool {
		return len(v) == 1 && !math.IsNaN(float64(v[0].Value)) && ok(float64(v[0].Value))
	})
	if err != nil {
		t.Error(err)
		return
	}
	t.Logf("%s = %v", q, vec[0].Value)
}
