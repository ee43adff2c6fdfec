package podsim

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Metric names, as Istio's standard telemetry exports them.
const (
	MetricRequestsTotal   = "istio_requests_total"
	MetricRequestDuration = "istio_request_duration_milliseconds"
)

// DurationBucketsMS are Istio's default buckets for request durations, in milliseconds.
var DurationBucketsMS = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Per-request labels; all other labels are constant for a pod.
var requestLabels = []string{
	"request_protocol",
	"response_code",
	"grpc_response_status",
	"response_flags",
	"destination_service",
	"destination_service_name",
	"destination_service_namespace",
}

// request is one finished request as the metrics see it.
type request struct {
	protocol Protocol
	// code is the HTTP status (0 when the client went away before an answer).
	code int
	// grpcCode is set for gRPC calls only.
	grpcCode *codes.Code
	// authority is the Host / :authority the client used.
	authority string
	duration  time.Duration
}

// podMetrics holds one pod's request metrics on its own registry, so every pod
// exposes only its own series, like a sidecar would.
type podMetrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ns       string
}

func newPodMetrics(id Identity) *podMetrics {
	constLabels := prometheus.Labels{
		"reporter":                       "destination",
		"source_workload":                unknown,
		"source_workload_namespace":      unknown,
		"source_principal":               unknown,
		"source_app":                     unknown,
		"source_version":                 unknown,
		"source_canonical_service":       unknown,
		"source_canonical_revision":      unknown,
		"source_cluster":                 unknown,
		"destination_workload":           id.Workload,
		"destination_workload_namespace": id.Namespace,
		"destination_principal":          unknown,
		"destination_app":                id.App,
		"destination_version":            id.Version,
		"destination_canonical_service":  id.CanonicalService,
		"destination_canonical_revision": id.CanonicalRevision,
		"destination_cluster":            "Kubernetes",
		"connection_security_policy":     "none",
	}
	m := &podMetrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        MetricRequestsTotal,
			Help:        "Requests served by the pod, labelled like Istio's destination reporter.",
			ConstLabels: constLabels,
		}, requestLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        MetricRequestDuration,
			Help:        "Duration of requests served by the pod in milliseconds, labelled like Istio's destination reporter.",
			ConstLabels: constLabels,
			Buckets:     DurationBucketsMS,
		}, requestLabels),
		ns: id.Namespace,
	}
	m.registry.MustRegister(m.requests, m.duration)
	return m
}

func (m *podMetrics) observe(r request) {
	grpcStatus, flags := "", "-"
	if r.grpcCode != nil {
		grpcStatus = strconv.Itoa(int(*r.grpcCode))
	}
	if r.code == 0 {
		flags = "DC" // downstream connection termination, as Envoy reports it
	}
	svc, name, ns := serviceFromAuthority(r.authority, m.ns)
	values := []string{string(r.protocol), strconv.Itoa(r.code), grpcStatus, flags, svc, name, ns}
	m.requests.WithLabelValues(values...).Inc()
	m.duration.WithLabelValues(values...).Observe(float64(r.duration) / float64(time.Millisecond))
}

// serviceFromAuthority maps the host a client addressed to the destination service
// labels: "name", "name.ns", "name.ns.svc" and "name.ns.svc.cluster.local" (with or
// without a port) name a cluster service; addresses and other hosts are "unknown".
func serviceFromAuthority(authority, podNamespace string) (svc, name, ns string) {
	host := authority
	if h, _, err := net.SplitHostPort(authority); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if _, err := netip.ParseAddr(host); err != nil && host != "" && host != "localhost" {
		parts := strings.Split(host, ".")
		switch {
		case len(parts) == 1:
			name, ns = parts[0], podNamespace
		case len(parts) == 2,
			len(parts) == 3 && parts[2] == "svc",
			len(parts) == 5 && parts[2] == "svc" && parts[3] == "cluster" && parts[4] == "local":
			name, ns = parts[0], parts[1]
		}
	}
	if name == "" || len(validation.IsDNS1035Label(name)) > 0 || len(validation.IsDNS1123Label(ns)) > 0 {
		return unknown, unknown, unknown
	}
	return name + "." + ns + ".svc.cluster.local", name, ns
}
