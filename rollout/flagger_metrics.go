package rollout

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// flaggerMetrics are the release metrics under Flagger's names and labels,
// for the dashboards and alerts written for Flagger (--flagger-metrics):
//
//	flagger_info{version, mesh_provider}              1
//	flagger_canary_total{namespace}                   Canaries in the namespace
//	flagger_canary_status{name, namespace}            0 running, 1 successful, 2 failed
//	flagger_canary_weight{workload, namespace}        workload <target>: the canary's weight;
//	                                                  workload <target>-primary: the rest
//	flagger_canary_duration_seconds{name, namespace}  seconds one analysis step took
//	flagger_canary_successes_total{name, namespace, deployment_strategy, analysis_status}
//	flagger_canary_failures_total{...}                promoted and rolled-back releases
//
// As in Flagger, name is the target Deployment's name and the weight's
// workload names Flagger's Deployments: <target> carries the canary's
// share and <target>-primary the stable share (serin's stable is the
// target Deployment itself; no <target>-primary Deployment exists).
type flaggerMetrics struct {
	info     *prometheus.GaugeVec
	total    *prometheus.GaugeVec
	status   *prometheus.GaugeVec
	weight   *prometheus.GaugeVec
	duration *prometheus.HistogramVec
	// successes and failures count finished releases.
	successes, failures *prometheus.CounterVec
}

// flaggerPrimarySuffix is Flagger's name suffix of the Deployment that
// serves stable traffic.
const flaggerPrimarySuffix = "-primary"

func newFlaggerMetrics() *flaggerMetrics {
	return &flaggerMetrics{
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flagger_info", Help: "Version and mesh provider, with Flagger's metric name.",
		}, []string{"version", "mesh_provider"}),
		total: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flagger_canary_total", Help: "Canaries per namespace.",
		}, []string{"namespace"}),
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flagger_canary_status", Help: "Last known release status by target: 0 running, 1 successful, 2 failed.",
		}, []string{"name", "namespace"}),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flagger_canary_weight", Help: "Traffic weight by workload: <target> is the canary, <target>-primary the stable share.",
		}, []string{"workload", "namespace"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flagger_canary_duration_seconds", Help: "Seconds spent performing one analysis step.",
			Buckets: prometheus.DefBuckets,
		}, []string{"name", "namespace"}),
		successes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagger_canary_successes_total", Help: "Promoted releases by target, strategy and whether analysis ran.",
		}, finishedLabels),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagger_canary_failures_total", Help: "Rolled-back releases by target, strategy and whether analysis ran.",
		}, finishedLabels),
	}
}

// finishedLabels label Flagger's counters of finished releases.
var finishedLabels = []string{"name", "namespace", "deployment_strategy", "analysis_status"}

func (f *flaggerMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{f.info, f.total, f.status, f.weight, f.duration, f.successes, f.failures}
}

// FlaggerStrategy is Flagger's deployment_strategy label of a strategy:
// canary, blue-green or ab-testing.
func FlaggerStrategy(s v1alpha1.Strategy) string {
	switch s {
	case v1alpha1.StrategyBlueGreen:
		return "blue-green"
	case v1alpha1.StrategyABTesting:
		return "ab-testing"
	}
	return "canary"
}

// finished counts a finished release of spec's target.
func (f *flaggerMetrics) finished(namespace string, spec *v1alpha1.CanarySpec, target string, succeeded bool) {
	analysis := "completed"
	if spec.SkipAnalysis {
		analysis = "skipped"
	}
	counter := f.failures
	if succeeded {
		counter = f.successes
	}
	counter.WithLabelValues(target, namespace, FlaggerStrategy(spec.Strategy()), analysis).Inc()
}

// FlaggerStatus is flagger_canary_status of a phase: 2 for a failed
// release, 0 while a release runs (waiting for its gates included), 1
// otherwise (initialised, succeeded, terminating).
func FlaggerStatus(p v1alpha1.CanaryPhase) float64 {
	switch p {
	case v1alpha1.PhaseFailed:
		return 2
	case v1alpha1.PhaseWaiting, v1alpha1.PhaseProgressing, v1alpha1.PhaseWaitingPromotion,
		v1alpha1.PhasePromoting, v1alpha1.PhaseFinalising:
		return 0
	}
	return 1
}

func (f *flaggerMetrics) observe(c *v1alpha1.Canary, target string) {
	f.status.WithLabelValues(target, c.Namespace).Set(FlaggerStatus(c.Status.Phase))
	f.weight.WithLabelValues(target, c.Namespace).Set(float64(c.Status.CanaryWeight))
	f.weight.WithLabelValues(target+flaggerPrimarySuffix, c.Namespace).Set(float64(100 - c.Status.CanaryWeight))
}

func (f *flaggerMetrics) forget(namespace, target string) {
	f.status.DeleteLabelValues(target, namespace)
	f.weight.DeleteLabelValues(target, namespace)
	f.weight.DeleteLabelValues(target+flaggerPrimarySuffix, namespace)
}

func (f *flaggerMetrics) setTotal(namespace string, n int) {
	if n == 0 {
		f.total.DeleteLabelValues(namespace)
		return
	}
	f.total.WithLabelValues(namespace).Set(float64(n))
}

func (f *flaggerMetrics) analysed(namespace, target string, d time.Duration) {
	f.duration.WithLabelValues(target, namespace).Observe(d.Seconds())
}
