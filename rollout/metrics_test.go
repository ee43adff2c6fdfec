package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func metricsCanary(ns, name, target string, phase v1alpha1.CanaryPhase, weight int32) *v1alpha1.Canary {
	return &v1alpha1.Canary{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.CanarySpec{TargetRef: v1alpha1.LocalObjectReference{Name: target}},
		Status:     v1alpha1.CanaryStatus{Phase: phase, CanaryWeight: weight},
	}
}

func TestFlaggerStatus(t *testing.T) {
	for p, want := range map[v1alpha1.CanaryPhase]float64{
		"": 1, v1alpha1.PhaseInitializing: 1, v1alpha1.PhaseInitialized: 1,
		v1alpha1.PhaseWaiting: 0, v1alpha1.PhaseProgressing: 0, v1alpha1.PhaseWaitingPromotion: 0,
		v1alpha1.PhasePromoting: 0, v1alpha1.PhaseFinalising: 0,
		v1alpha1.PhaseSucceeded: 1, v1alpha1.PhaseFailed: 2,
		v1alpha1.PhaseTerminating: 1, v1alpha1.PhaseTerminated: 1,
	} {
		if got := FlaggerStatus(p); got != want {
			t.Errorf("FlaggerStatus(%q) = %v, want %v", p, got, want)
		}
	}
}

var flaggerNames = []string{
	"flagger_info", "flagger_canary_total", "flagger_canary_status", "flagger_canary_weight",
	"flagger_canary_duration_seconds", "flagger_canary_successes_total", "flagger_canary_failures_total",
}

// TestMetricsFlagger: Flagger's names carry the release state with
// Flagger's labels: the target's name, <target> for the canary's weight
// and <target>-primary for the stable share, Canaries per namespace, and
// one duration sample per analysis step; a deleted Canary leaves no
// series behind.
func TestMetricsFlagger(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, "v1.2.3")
	m.EnableFlagger(reg, "v1.2.3", "serin")

	web := metricsCanary("shop", "web-release", "web", v1alpha1.PhaseProgressing, 30)
	api := metricsCanary("shop", "api", "api", v1alpha1.PhaseFailed, 0)
	other := metricsCanary("blog", "front", "front", v1alpha1.PhaseSucceeded, 0)
	for _, c := range []*v1alpha1.Canary{web, api, other, web} {
		m.seen(c)
		m.observe(c)
	}
	m.analysed(web, 1500*time.Millisecond)
	m.analysed(web, 20*time.Millisecond)

	want := `
# HELP flagger_canary_status Last known release status by target: 0 running, 1 successful, 2 failed.
# TYPE flagger_canary_status gauge
flagger_canary_status{name="api",namespace="shop"} 2
flagger_canary_status{name="front",namespace="blog"} 1
flagger_canary_status{name="web",namespace="shop"} 0
# HELP flagger_canary_total Canaries per namespace.
# TYPE flagger_canary_total gauge
flagger_canary_total{namespace="blog"} 1
flagger_canary_total{namespace="shop"} 2
# HELP flagger_canary_weight Traffic weight by workload: <target> is the canary, <target>-primary the stable share.
# TYPE flagger_canary_weight gauge
flagger_canary_weight{namespace="blog",workload="front"} 0
flagger_canary_weight{namespace="blog",workload="front-primary"} 100
flagger_canary_weight{namespace="shop",workload="api"} 0
flagger_canary_weight{namespace="shop",workload="api-primary"} 100
flagger_canary_weight{namespace="shop",workload="web"} 30
flagger_canary_weight{namespace="shop",workload="web-primary"} 70
# HELP flagger_info Version and mesh provider, with Flagger's metric name.
# TYPE flagger_info gauge
flagger_info{mesh_provider="serin",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), flaggerNames[:4]...); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "flagger_canary_duration_seconds"); err != nil || n != 1 {
		t.Fatalf("%d duration series, %v", n, err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "flagger_canary_duration_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 2 || h.GetSampleSum() != 1.52 {
			t.Errorf("duration histogram: count %d sum %v, want 2 and 1.52", h.GetSampleCount(), h.GetSampleSum())
		}
		if l := mf.GetMetric()[0].GetLabel(); len(l) != 2 || l[0].GetValue() != "web" || l[1].GetValue() != "shop" {
			t.Errorf("duration labels %v, want name=web namespace=shop", l)
		}
	}

	// Deleting the Canaries: their series go, and the namespace's total
	// with the last of them.
	m.forget("shop", "web-release")
	m.forget("blog", "front")
	m.forget("shop", "never-seen")
	want = `
# HELP flagger_canary_status Last known release status by target: 0 running, 1 successful, 2 failed.
# TYPE flagger_canary_status gauge
flagger_canary_status{name="api",namespace="shop"} 2
# HELP flagger_canary_total Canaries per namespace.
# TYPE flagger_canary_total gauge
flagger_canary_total{namespace="shop"} 1
# HELP flagger_canary_weight Traffic weight by workload: <target> is the canary, <target>-primary the stable share.
# TYPE flagger_canary_weight gauge
flagger_canary_weight{namespace="shop",workload="api"} 0
flagger_canary_weight{namespace="shop",workload="api-primary"} 100
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), flaggerNames[1:4]...); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsForgetTarget: serin's weight series are labelled by the
// target Deployment, so a deleted Canary whose name differs from its
// target's leaves none behind, and a retargeted Canary drops the old
// target's.
func TestMetricsForgetTarget(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, "dev")
	c := metricsCanary("shop", "web-release", "web", v1alpha1.PhaseProgressing, 10)
	m.seen(c)
	m.observe(c)
	c2 := metricsCanary("shop", "other", "web-release", v1alpha1.PhaseProgressing, 20)
	m.seen(c2)
	m.observe(c2)
	// Retarget the first Canary, then delete it.
	c.Spec.TargetRef.Name = "web2"
	m.seen(c)
	m.observe(c)
	if n, _ := testutil.GatherAndCount(reg, "serin_canary_weight"); n != 4 {
		t.Fatalf("%d weight series after retargeting, want 4 (web2 and web-release, both tracks)", n)
	}
	m.forget("shop", "web-release")
	want := `
# HELP serin_canary_weight Canary weight served to the data plane, by workload (stable and canary).
# TYPE serin_canary_weight gauge
serin_canary_weight{namespace="shop",workload="web-release"} 80
serin_canary_weight{namespace="shop",workload="web-release-canary"} 20
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "serin_canary_weight"); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(reg, flaggerNames...); n != 0 {
		t.Fatalf("%d flagger series without EnableFlagger", n)
	}
	var nilMetrics *Metrics
	nilMetrics.seen(c)
	nilMetrics.analysed(c, time.Second)
}

// TestMetricsFlaggerFinished: promoted and rolled-back releases count in
// Flagger's counters, by target, strategy and whether analysis ran.
func TestMetricsFlaggerFinished(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, "dev")
	m.EnableFlagger(reg, "dev", "serin")
	c := metricsCanary("shop", "web-release", "web", v1alpha1.PhaseSucceeded, 0)
	canary := &v1alpha1.CanarySpec{Analysis: &v1alpha1.CanaryAnalysis{StepWeight: 10}}
	blueGreen := &v1alpha1.CanarySpec{Analysis: &v1alpha1.CanaryAnalysis{Iterations: 3}}
	ab := &v1alpha1.CanarySpec{Analysis: &v1alpha1.CanaryAnalysis{Iterations: 3, Match: []v1alpha1.HTTPMatchRequest{{}}}}
	skipped := &v1alpha1.CanarySpec{SkipAnalysis: true, Analysis: &v1alpha1.CanaryAnalysis{StepWeight: 10}}
	m.finished(c, canary, Finished{Succeeded: true, Duration: time.Minute})
	m.finished(c, canary, Finished{Succeeded: true, Duration: time.Minute})
	m.finished(c, blueGreen, Finished{Succeeded: false, Duration: time.Minute})
	m.finished(c, ab, Finished{Succeeded: true, Duration: time.Minute})
	m.finished(c, skipped, Finished{Succeeded: true, Duration: time.Minute})
	want := `
# HELP flagger_canary_failures_total Rolled-back releases by target, strategy and whether analysis ran.
# TYPE flagger_canary_failures_total counter
flagger_canary_failures_total{analysis_status="completed",deployment_strategy="blue-green",name="web",namespace="shop"} 1
# HELP flagger_canary_successes_total Promoted releases by target, strategy and whether analysis ran.
# TYPE flagger_canary_successes_total counter
flagger_canary_successes_total{analysis_status="completed",deployment_strategy="ab-testing",name="web",namespace="shop"} 1
flagger_canary_successes_total{analysis_status="completed",deployment_strategy="canary",name="web",namespace="shop"} 2
flagger_canary_successes_total{analysis_status="skipped",deployment_strategy="canary",name="web",namespace="shop"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "flagger_canary_successes_total", "flagger_canary_failures_total"); err != nil {
		t.Fatal(err)
	}
}
