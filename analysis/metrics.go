package analysis

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count analysis checks by verdict, for dashboards: every check
// (the interval's and the comparative judge's fast looks in between) adds
// one to serin_analysis_checks_total{namespace, name, verdict,
// failed_check}. With Flagger's names enabled, the last value of each of
// the Canary's metrics is flagger_canary_metric_analysis{name, namespace,
// metric}, name being the target Deployment's as in Flagger.
type Metrics struct {
	checks *prometheus.CounterVec
	// flaggerAnalysis, when set, holds the last metric values.
	flaggerAnalysis *prometheus.GaugeVec
}

// NewMetrics registers the analysis metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{checks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "serin_analysis_checks_total",
		Help: "Analysis checks by verdict (Promote, Hold, Rollback, NoData) and whether a check failed.",
	}, []string{"namespace", "name", "verdict", "failed_check"})}
	reg.MustRegister(m.checks)
	return m
}

// EnableFlagger registers flagger_canary_metric_analysis on reg as well.
// Call it before the first check.
func (m *Metrics) EnableFlagger(reg prometheus.Registerer) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flagger_canary_metric_analysis",
		Help: "Last value of each analysis metric of a release (success rate in %, duration in ms, a template's number), by target.",
	}, []string{"name", "namespace", "metric"})
	reg.MustRegister(g)
	m.flaggerAnalysis = g
}

func (m *Metrics) observe(namespace, name string, r Result) {
	if m == nil {
		return
	}
	m.checks.WithLabelValues(namespace, name, string(r.Verdict), strconv.FormatBool(r.FailedCheck)).Inc()
}

// observeValues sets the last value of every metric the check measured on
// the canary (no data and failed queries leave the last value).
func (m *Metrics) observeValues(namespace, target string, ev Evidence) {
	if m == nil || m.flaggerAnalysis == nil {
		return
	}
	for _, mv := range ev.Metrics {
		if mv.Err != nil || !mv.Canary.OK || math.IsNaN(mv.Canary.V) {
			continue
		}
		m.flaggerAnalysis.WithLabelValues(target, namespace, mv.Name).Set(mv.Canary.V)
	}
}
