package analysis

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count analysis checks by verdict, for dashboards: every check
// (the interval's and the comparative judge's fast looks in between) adds
// one to serin_analysis_checks_total{namespace, name, verdict,
// failed_check}.
type Metrics struct {
	checks *prometheus.CounterVec
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

func (m *Metrics) observe(namespace, name string, r Result) {
	if m == nil {
		return
	}
	m.checks.WithLabelValues(namespace, name, string(r.Verdict), strconv.FormatBool(r.FailedCheck)).Inc()
}
