package analysis

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsCountVerdicts(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := &Analyzer{Metrics: NewMetrics(reg)}
	c := canary(durMetric())
	// No Prometheus: a failed check.
	if _, err := a.Check(context.Background(), Input{Canary: c, WindowStart: t0, Now: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	// Weight applied a moment ago: no data yet.
	if _, err := a.Check(context.Background(), Input{Canary: c, WindowStart: t0, Now: t0.Add(time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"serin_analysis_checks_total failed_check=true name=podinfo namespace=test verdict=Hold":    1,
		"serin_analysis_checks_total failed_check=false name=podinfo namespace=test verdict=NoData": 1,
	}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	var nilMetrics *Metrics
	nilMetrics.observe("ns", "n", Result{Verdict: Promote}) // a nil Metrics is a no-op
}
