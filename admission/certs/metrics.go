package certs

import (
	"crypto/x509"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the Rotator: its writes of the Secret and the expiry of the
// certificates. A nil Metrics records nothing.
type Metrics struct {
	rotations *prometheus.CounterVec
	expiry    *prometheus.GaugeVec
}

// NewMetrics registers the Rotator's metrics on reg (controller-runtime's
// registry in production).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serin_webhook_certificate_writes_total",
			Help: "Writes of the webhook certificate Secret by this replica, by action (Bootstrap, RotateCA, IssueServing, RetireCAs).",
		}, []string{"action"}),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "serin_webhook_certificate_expiry_timestamp_seconds",
			Help: "When the current webhook certificate expires, by certificate (ca, serving).",
		}, []string{"certificate"}),
	}
	reg.MustRegister(m.rotations, m.expiry)
	return m
}

// wrote counts a write of the Secret.
func (m *Metrics) wrote(action Action) {
	if m == nil {
		return
	}
	m.rotations.WithLabelValues(string(action)).Inc()
}

// setExpiry records when a certificate (ca, serving) expires.
func (m *Metrics) setExpiry(which string, c *x509.Certificate) {
	if m == nil {
		return
	}
	m.expiry.WithLabelValues(which).Set(float64(c.NotAfter.Unix()))
}
