package rollout

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

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

	// flagger, when set, records the same under Flagger's names.
	flagger *flaggerMetrics

	mu sync.Mutex
	// targets are the Canaries seen, with their target Deployment: a
	// deleted Canary's series are found by it, and Flagger's canary total
	// counts them.
	targets map[types.NamespacedName]string
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
		targets: map[types.NamespacedName]string{},
	}
	reg.MustRegister(m.status, m.weight, m.failedChecks, m.duration, m.total, m.info)
	m.info.WithLabelValues(version).Set(1)
	return m
}

// EnableFlagger registers Flagger's release metrics on reg as well (see
// flaggerMetrics) and sets flagger_info. Call it before the reconciler
// runs.
func (m *Metrics) EnableFlagger(reg prometheus.Registerer, version, meshProvider string) {
	f := newFlaggerMetrics()
	reg.MustRegister(f.collectors()...)
	f.info.WithLabelValues(version, meshProvider).Set(1)
	m.flagger = f
}

// seen records that the Canary exists (and which Deployment it releases).
func (m *Metrics) seen(c *v1alpha1.Canary) {
	if m == nil {
		return
	}
	key := types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
	target := targetName(c)
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, known := m.targets[key]
	if known && prev == target {
		return
	}
	if known {
		m.forgetTarget(c.Namespace, prev)
	}
	m.targets[key] = target
	if m.flagger != nil {
		m.flagger.setTotal(c.Namespace, m.countLocked(c.Namespace))
	}
}

// countLocked counts the Canaries seen in namespace; m.mu is held.
func (m *Metrics) countLocked(namespace string) int {
	n := 0
	for k := range m.targets {
		if k.Namespace == namespace {
			n++
		}
	}
	return n
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
	if m.flagger != nil {
		m.flagger.observe(c, target)
	}
}

// analysed records how long one analysis step took.
func (m *Metrics) analysed(c *v1alpha1.Canary, d time.Duration) {
	if m == nil || m.flagger == nil {
		return
	}
	m.flagger.analysed(c.Namespace, targetName(c), d)
}

// finished records a finished release; spec is the effective spec.
func (m *Metrics) finished(c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, f Finished) {
	if m == nil {
		return
	}
	if m.flagger != nil {
		m.flagger.finished(c.Namespace, spec, targetName(c), f.Succeeded)
	}
	result := "failed"
	if f.Succeeded {
		result = "succeeded"
	}
	m.duration.WithLabelValues(c.Name, c.Namespace, result).Observe(f.Duration.Seconds())
	m.total.WithLabelValues(c.Namespace, result).Inc()
}

// forget removes the series of a deleted Canary.
func (m *Metrics) forget(namespace, name string) {
	if m == nil {
		return
	}
	m.status.DeleteLabelValues(name, namespace)
	m.failedChecks.DeleteLabelValues(name, namespace)
	key := types.NamespacedName{Namespace: namespace, Name: name}
	m.mu.Lock()
	defer m.mu.Unlock()
	target, known := m.targets[key]
	if !known {
		// Never seen by this process: it labelled nothing (and its name
		// may be another Canary's target).
		return
	}
	delete(m.targets, key)
	m.forgetTarget(namespace, target)
	if m.flagger != nil {
		m.flagger.setTotal(namespace, m.countLocked(namespace))
	}
}

// forgetTarget removes the series labelled with a target Deployment.
func (m *Metrics) forgetTarget(namespace, target string) {
	m.weight.DeleteLabelValues(target, namespace)
	m.weight.DeleteLabelValues(v1alpha1.CopyName(target), namespace)
	if m.flagger != nil {
		m.flagger.forget(namespace, target)
	}
}
