package certs

import (
	"crypto/x509"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the Rotator, for controller-runtime's registry (see
// Collectors).
var (
	rotations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "serin_webhook_certificate_writes_total",
		Help: "Writes of the webhook certificate Secret by this replica, by action (Bootstrap, RotateCA, IssueServing, RetireCAs).",
	}, []string{"action"})
	expiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "serin_webhook_certificate_expiry_timestamp_seconds",
		Help: "When the current webhook certificate expires, by certificate (ca, serving).",
	}, []string{"certificate"})
)

// Collectors are the Rotator's metrics, for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{rotations, expiry}
}

func setExpiry(which string, c *x509.Certificate) {
	expiry.WithLabelValues(which).Set(float64(c.NotAfter.Unix()))
}
