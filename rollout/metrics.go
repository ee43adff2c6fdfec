package rollout

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Metrics are the release metrics, with Flagger's meanings under serin_
// names: status 0 running, 1 succeeded, 2 failed.
type Metrics struct {
	status       *prometheus.GaugeVec
	weight       *prometheus.GaugeVec
	failedChecks *prometheus.GaugeVec
	duration     *prometheus.HistogramVec
	total        *prometheus.CounterVec
	info         *prometheus.GaugeVec
}

// NewMetrics registers the release metrics on reg (controller-runtime's
// registry in production) and sets serin_info.
func NewMetrics(reg prometheus.Registerer, version string) *Metrics {
	m := &Metrics{
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "serin_canary_status", Help: "Release status: 0 running, 1 succeeded, 2 failed.",
		}, []string{"name", "namespace"}),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "serin_canary_weight", Help: "Canary weight served to the data plane, by workload (stable and canary).",
		}, []string{"workload", "namespace"}),
		failedChecks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "serin_canary_failed_checks", Help: "Failed checks of the current release.",
		}, []string{"name", "namespace"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "serin_canary_duration_seconds", Help: "Duration of finished releases.",
			Buckets: []float64{10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200},
		}, []string{"name", "namespace", "result"}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serin_canary_total", Help: "Finished releases, by result.",
		}, []string{"namespace", "result"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "serin_info", Help: "serin's version.",
		}, []string{"version"}),
	}
	reg.MustRegister(m.status, m.weight, m.failedChecks, m.duration, m.total, m.info)
	m.info.WithLabelValues(version).Set(1)
	return m
}

func (m *Metrics) observe(c *v1alpha1.Canary) {
	if m == nil {
		return
	}
	status := 0.0
	switch c.Status.Phase {
	case v1alpha1.PhaseSucceeded, v1alpha1.PhaseInitialized:
		status = 1
	case v1alpha1.PhaseFailed:
		status = 2
	}
	m.status.WithLabelValues(c.Name, c.Namespace).Set(status)
	target := targetName(c)
	m.weight.WithLabelValues(v1alpha1.CopyName(target), c.Namespace).Set(float64(c.Status.CanaryWeight))
	m.weight.WithLabelValues(target, c.Namespace).Set(float64(100 - c.Status.CanaryWeight))
	m.failedChecks.WithLabelValues(c.Name, c.Namespace).Set(float64(c.Status.FailedChecks))
}

func (m *Metrics) finished(c *v1alpha1.Canary, f Finished) {
	if m == nil {
		return
	}
	result := "failed"
	if f.Succeeded {
		result = "succeeded"
	}
	m.duration.WithLabelValues(c.Name, c.Namespace, result).Observe(f.Duration.Seconds())
	m.total.WithLabelValues(c.Namespace, result).Inc()
}

func (m *Metrics) forget(namespace, name string) {
	if m == nil {
		return
	}
	m.status.DeleteLabelValues(name, namespace)
	m.failedChecks.DeleteLabelValues(name, namespace)
	m.weight.DeleteLabelValues(name, namespace)
	m.weight.DeleteLabelValues(v1alpha1.CopyName(name), namespace)
}
