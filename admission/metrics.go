package admission

import (
	"context"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Metrics count and time the webhooks' requests. A nil Metrics records
// nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the webhooks' metrics on reg (controller-runtime's
// registry in production).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serin_admission_requests_total",
			Help: "Admission requests handled, by webhook and result (allowed, patched, denied, errored).",
		}, []string{"webhook", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "serin_admission_duration_seconds",
			Help:    "Time to answer an admission request, by webhook.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .1},
		}, []string{"webhook"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observe records one answered request.
func (m *Metrics) observe(webhook, result string, elapsed time.Duration) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(webhook).Observe(elapsed.Seconds())
	m.requests.WithLabelValues(webhook, result).Inc()
}

// instrument counts and times the requests h answers under name, and
// logs each at V(1).
func (m *Metrics) instrument(name string, h admission.Handler) admission.Handler {
	return HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		start := time.Now()
		resp := h.Handle(ctx, req)
		elapsed := time.Since(start)
		result := "allowed"
		switch {
		case resp.Result != nil && resp.Result.Code >= 400 && resp.Result.Code != http.StatusUnprocessableEntity:
			result = "errored"
		case !resp.Allowed:
			result = "denied"
		case len(resp.Patches) > 0:
			result = "patched"
		}
		m.observe(name, result, elapsed)
		logr.FromContextOrDiscard(ctx).V(1).Info("admission", "webhook", name, "operation", req.Operation,
			"namespace", req.Namespace, "name", req.Name, "dryRun", req.DryRun != nil && *req.DryRun, "result", result)
		return resp
	})
}
