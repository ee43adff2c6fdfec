package server

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connected *prometheus.GaugeVec
	nacks     *prometheus.CounterVec
	sends     *prometheus.CounterVec
	push      *prometheus.HistogramVec
	ack       *prometheus.HistogramVec
	reports   prometheus.Counter
	denied    prometheus.Counter
	withheld  *prometheus.CounterVec
	dropped   *prometheus.CounterVec
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "serin_xds_connected_proxies",
			Help: "Open xDS streams, by service (ads, cds, eds, lds, rds, lrs) and protocol (sotw, delta).",
		}, []string{"service", "mode"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serin_xds_nack_total",
			Help: "Responses rejected by a proxy (NACKs), by resource type.",
		}, []string{"type_url"}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serin_xds_sends_total",
			Help: "xDS responses sent, by resource type.",
		}, []string{"type_url"}),
		push: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "serin_xds_push_duration_seconds",
			Help:    "Time from a resource content entering the cache to its being sent on a subscribed stream.",
			Buckets: latencyBuckets,
		}, []string{"type_url"}),
		ack: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "serin_xds_ack_duration_seconds",
			Help:    "Time from a resource content entering the cache to a subscribed proxy acknowledging it.",
			Buckets: latencyBuckets,
		}, []string{"type_url"}),
		reports: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "serin_xds_load_reports_total",
			Help: "Load reports received on the LRS service.",
		}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "serin_xds_unauthenticated_streams_total",
			Help: "xDS and LRS streams refused because the client had no SPIFFE identity.",
		}),
		withheld: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serin_xds_withheld_resources_total",
			Help: "Resources left out of responses because the stream's namespace may not see their release, by resource type.",
		}, []string{"type_url"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serin_xds_load_reports_dropped_total",
			Help: "Cluster load stats dropped, by reason: unknown (not a served cluster), denied (not visible to the reporter), limit (too many clusters on one stream).",
		}, []string{"reason"}),
	}
	for _, r := range []string{"unknown", "denied", "limit"} {
		m.dropped.WithLabelValues(r)
	}
	for k := range numKinds {
		u := k.typeURL()
		m.withheld.WithLabelValues(u)
		m.nacks.WithLabelValues(u)
		m.sends.WithLabelValues(u)
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.connected, m.nacks, m.sends, m.push, m.ack, m.reports, m.denied, m.withheld, m.dropped} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("registering xDS metrics: %w", err)
	}
	return m, nil
}
