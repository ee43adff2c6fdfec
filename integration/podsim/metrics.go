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

// Metric names, as a Linkerd proxy exports them (response_latency_ms is a
// histogram: its series are response_latency_ms_bucket, _sum and _count).
const (
	MetricLinkerdResponses = "response_total"
	MetricLinkerdLatency   = "response_latency_ms"
)

// LinkerdLatencyBucketsMS are the Linkerd proxy's buckets for response
// latencies, in milliseconds.
var LinkerdLatencyBucketsMS = []float64{1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500,
	1000, 2000, 3000, 4000, 5000, 10000, 20000, 30000, 40000, 50000}

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

// Per-response labels of the Linkerd series (grpc_status is empty, so
// absent, for HTTP).
var linkerdLabels = []string{"authority", "status_code", "classification", "grpc_status"}

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
// exposes only its own series, like a sidecar would. Istio's series are nil
// for a pod meshed by Linkerd.
type podMetrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// responses and latency are the same requests as a Linkerd proxy's
	// inbound side counts them.
	responses *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	ns        string
}

func newPodMetrics(id Identity) *podMetrics {
	m := &podMetrics{registry: prometheus.NewRegistry(), ns: id.Namespace}
	if id.Mesh != MeshLinkerd {
		m.requests, m.duration = newIstioMetrics(id)
		m.registry.MustRegister(m.requests, m.duration)
	}
	m.responses, m.latency = newLinkerdMetrics(id)
	m.registry.MustRegister(m.responses, m.latency)
	return m
}

// newIstioMetrics are Istio's standard request metrics as the destination
// reporter labels them.
func newIstioMetrics(id Identity) (*prometheus.CounterVec, *prometheus.HistogramVec) {
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
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        MetricRequestsTotal,
		Help:        "Requests served by the pod, labelled like Istio's destination reporter.",
		ConstLabels: constLabels,
	}, requestLabels)
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        MetricRequestDuration,
		Help:        "Duration of requests served by the pod in milliseconds, labelled like Istio's destination reporter.",
		ConstLabels: constLabels,
		Buckets:     DurationBucketsMS,
	}, requestLabels)
	return requests, duration
}

// newLinkerdMetrics are a Linkerd proxy's inbound response metrics with
// the labels its Prometheus configuration adds (namespace, pod, and
// deployment: the pod's workload).
func newLinkerdMetrics(id Identity) (*prometheus.CounterVec, *prometheus.HistogramVec) {
	constLabels := prometheus.Labels{
		"namespace":  id.Namespace,
		"deployment": id.Workload,
		"pod":        id.Pod,
		"direction":  "inbound",
	}
	responses := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        MetricLinkerdResponses,
		Help:        "Responses served by the pod, labelled like a Linkerd proxy's inbound side.",
		ConstLabels: constLabels,
	}, linkerdLabels)
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        MetricLinkerdLatency,
		Help:        "Latency of responses served by the pod in milliseconds, labelled like a Linkerd proxy's inbound side.",
		ConstLabels: constLabels,
		Buckets:     LinkerdLatencyBucketsMS,
	}, linkerdLabels)
	return responses, latency
}

func (m *podMetrics) observe(r request) {
	grpcStatus := ""
	if r.grpcCode != nil {
		grpcStatus = strconv.Itoa(int(*r.grpcCode))
	}
	ms := float64(r.duration) / float64(time.Millisecond)
	if m.requests != nil {
		flags := "-"
		if r.code == 0 {
			flags = "DC" // downstream connection termination, as Envoy reports it
		}
		svc, name, ns := serviceFromAuthority(r.authority, m.ns)
		values := []string{string(r.protocol), strconv.Itoa(r.code), grpcStatus, flags, svc, name, ns}
		m.requests.WithLabelValues(values...).Inc()
		m.duration.WithLabelValues(values...).Observe(ms)
	}
	if r.code == 0 {
		return // no response: Linkerd's response metrics never see it
	}
	lv := []string{r.authority, strconv.Itoa(r.code), linkerdClassification(r), grpcStatus}
	m.responses.WithLabelValues(lv...).Inc()
	m.latency.WithLabelValues(lv...).Observe(ms)
}

// linkerdClassification is how a Linkerd proxy classifies a response by
// default: with a gRPC status, any status but OK is a failure; otherwise
// an HTTP 5xx is.
func linkerdClassification(r request) string {
	failed := r.code >= 500
	if r.grpcCode != nil {
		failed = *r.grpcCode != codes.OK
	}
	if failed {
		return "failure"
	}
	return "success"
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
