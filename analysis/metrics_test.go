package analysis

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis/prom"
	"github.com/serin-dev/serin/api/v1alpha1"
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

// TestMetricsFlaggerAnalysis: with Flagger's names on, each metric's last
// canary value is flagger_canary_metric_analysis, labelled by the target
// Deployment (not the Canary's name) as Flagger does; a metric without data
// or with a failed query keeps its last value.
func TestMetricsFlaggerAnalysis(t *testing.T) {
	p := newPromServer(t)
	p.requests["podinfo-canary"], p.requests["podinfo"] = "100", "900"
	p.errors["podinfo-canary"], p.errors["podinfo"] = "2", "1"
	p.p99["podinfo-canary"], p.p99["podinfo"] = "120", "90"
	p.custom = "7.5"
	tpl := &v1alpha1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "rps", Namespace: "test"},
		Spec: v1alpha1.MetricTemplateSpec{Provider: v1alpha1.MetricProvider{Address: p.URL}, Query: `sum(rate(x[{{ interval }}]))`}}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.EnableFlagger(reg)
	a := &Analyzer{Prometheus: &prom.Factory{Default: prom.Config{Address: p.URL}, Egress: loopback}, Templates: templates{"test/rps": tpl}, Metrics: m}
	custom := v1alpha1.CanaryMetric{Name: "rps", Interval: "1m", TemplateRef: &v1alpha1.CrossNamespaceObjectReference{Name: "rps"}}
	missing := v1alpha1.CanaryMetric{Name: "gone", Interval: "1m", TemplateRef: &v1alpha1.CrossNamespaceObjectReference{Name: "gone"}}
	c := canary(srMetric(), durMetric(), custom, missing)
	c.Name = "podinfo-release"
	check := func() {
		t.Helper()
		if _, err := a.Check(context.Background(), Input{Canary: c, WindowStart: t0, Now: t0.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	check()
	want := `
# HELP flagger_canary_metric_analysis Last value of each analysis metric of a release (success rate in %, duration in ms, a template's number), by target.
# TYPE flagger_canary_metric_analysis gauge
flagger_canary_metric_analysis{metric="request-duration",name="podinfo",namespace="test"} 120
flagger_canary_metric_analysis{metric="request-success-rate",name="podinfo",namespace="test"} 98
flagger_canary_metric_analysis{metric="rps",name="podinfo",namespace="test"} 7.5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "flagger_canary_metric_analysis"); err != nil {
		t.Fatal(err)
	}
	// The canary's traffic stops: success rate and duration have no data
	// now, and keep their last values; the template's value moves.
	p.mu.Lock()
	delete(p.requests, "podinfo-canary")
	delete(p.p99, "podinfo-canary")
	p.custom = "3"
	p.mu.Unlock()
	check()
	want = strings.Replace(want, "} 7.5", "} 3", 1)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "flagger_canary_metric_analysis"); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsFlaggerOff: without Flagger's names nothing flagger_* is
// registered.
func TestMetricsFlaggerOff(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := &Analyzer{Metrics: NewMetrics(reg)}
	if _, err := a.Check(context.Background(), Input{Canary: canary(durMetric()), WindowStart: t0, Now: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	n, err := testutil.GatherAndCount(reg, "flagger_canary_metric_analysis")
	if err != nil || n != 0 {
		t.Fatalf("%d flagger series, %v", n, err)
	}
}
