package prom

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/serin-dev/serin/api/querytemplate"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// Workloads names the two tracks of a release and the telemetry they are
// read from: Istio labels a Deployment destination_workload and its
// namespace destination_workload_namespace, Linkerd deployment and
// namespace.
type Workloads struct {
	Namespace string
	// Canary is the canary copy's Deployment (<target>-canary).
	Canary string
	// Stable is the user's Deployment (<target>).
	Stable string
	// Series is the mesh whose series the built-in checks read; the zero
	// value is Istio's.
	Series Series
}

// Series names a mesh's standard request telemetry.
type Series string

// The series the built-in checks can read.
const (
	// SeriesIstio is istio_requests_total and
	// istio_request_duration_milliseconds from the destination reporter.
	SeriesIstio Series = ""
	// SeriesLinkerd is the Linkerd proxy's inbound response_total and
	// response_latency_ms.
	SeriesLinkerd Series = "linkerd"
)

// SeriesFor picks the series of a Canary's effective spec.provider:
// Linkerd's for linkerd, Istio's for every other provider and for none.
func SeriesFor(p v1alpha1.Provider) Series {
	if p == v1alpha1.ProviderLinkerd {
		return SeriesLinkerd
	}
	return SeriesIstio
}

// Counts are the requests one track completed in a window and how many of
// them failed. Prometheus extrapolates increase(), so they need not be
// whole numbers.
type Counts struct {
	Requests float64
	Errors   float64
}

// TrackCounts are both tracks' counts over the same window.
type TrackCounts struct {
	Canary, Stable Counts
}

// TrackValues are both tracks' values over the same window.
type TrackValues struct {
	Canary, Stable Value
}

// GRPCServerErrorCodes are the gRPC status codes counted as failures of the
// server: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE
// and DATA_LOSS. Istio reports gRPC calls with response_code="200" and the
// status in grpc_response_status, so without them a failing gRPC canary
// would look perfect. Codes that are the caller's doing (NOT_FOUND,
// INVALID_ARGUMENT, PERMISSION_DENIED, …) are not failures of a release.
// Linkerd's proxy classifies responses itself (classification="failure":
// HTTP 5xx, any gRPC status but OK, a failed response stream), and that
// classification is what its checks count.
var GRPCServerErrorCodes = []string{"2", "4", "12", "13", "14", "15"}

// telemetry is one mesh's names for its server-side request series.
type telemetry struct {
	// requests is the request counter, bucket the duration histogram's
	// buckets (in milliseconds).
	requests, bucket string
	// workload and namespace are the labels of a Deployment and its
	// namespace; scope selects the server side's series.
	workload, namespace, scope string
}

var telemetries = map[Series]telemetry{
	SeriesIstio: {requests: "istio_requests_total", bucket: "istio_request_duration_milliseconds_bucket",
		workload: "destination_workload", namespace: "destination_workload_namespace", scope: `reporter="destination"`},
	SeriesLinkerd: {requests: "response_total", bucket: "response_latency_ms_bucket",
		workload: "deployment", namespace: "namespace", scope: `direction="inbound"`},
}

// names are the workloads' series names; an unknown Series (which
// validate refuses) reads Istio's.
func (w Workloads) names() telemetry {
	if t, ok := telemetries[w.Series]; ok {
		return t
	}
	return telemetries[SeriesIstio]
}

// workloadLabel is the label that names a track's Deployment in the
// series (and in the built-in queries' results).
func (w Workloads) workloadLabel() string { return w.names().workload }

// selector is the label matcher of both tracks' server-side telemetry.
func (w Workloads) selector() string {
	t := w.names()
	names := []string{regexp.QuoteMeta(w.Stable), regexp.QuoteMeta(w.Canary)}
	return fmt.Sprintf(`%s,%s=%s,%s=~%s`, t.scope, t.namespace, querytemplate.QuoteString(w.Namespace),
		t.workload, querytemplate.QuoteString(strings.Join(names, "|")))
}

func window(d time.Duration) string {
	return querytemplate.FormatDuration(d.Truncate(time.Second))
}

// RequestsQuery counts each track's requests over the window.
func RequestsQuery(w Workloads, d time.Duration) string {
	t := w.names()
	return fmt.Sprintf(`sum by (%s) (increase(%s{%s}[%s]))`, t.workload, t.requests, w.selector(), window(d))
}

// ErrorsQuery counts each track's failed requests over the window. Istio:
// HTTP 5xx, plus gRPC server errors carried in a non-5xx response; the two
// series sets are disjoint (they differ in response_code), so "or" adds
// them. Linkerd: the responses its proxy classified as failures.
func ErrorsQuery(w Workloads, d time.Duration) string {
	t, sel, win := w.names(), w.selector(), window(d)
	if w.Series == SeriesLinkerd {
		return fmt.Sprintf(`sum by (%s) (increase(%s{%s,classification="failure"}[%s]))`, t.workload, t.requests, sel, win)
	}
	return fmt.Sprintf(`sum by (%s) (increase(%s{%s,response_code=~"5.."}[%s]) or increase(%s{%s,response_code!~"5..",grpc_response_status=~"%s"}[%s]))`,
		t.workload, t.requests, sel, win, t.requests, sel, strings.Join(GRPCServerErrorCodes, "|"), win)
}

// DurationQuery is each track's p99 request duration in milliseconds
// (Linkerd measures the time to the response's first byte).
func DurationQuery(w Workloads, d time.Duration) string {
	t := w.names()
	return fmt.Sprintf(`histogram_quantile(0.99, sum by (le, %s) (rate(%s{%s}[%s])))`, t.workload, t.bucket, w.selector(), window(d))
}

// RequestCounts returns both tracks' request and error counts over the
// window ending at. A track with no series has zero requests.
func (c *Client) RequestCounts(ctx context.Context, w Workloads, d time.Duration, at time.Time) (TrackCounts, error) {
	if err := w.validate(d); err != nil {
		return TrackCounts{}, err
	}
	total, err := c.queryByLabel(ctx, RequestsQuery(w, d), w.workloadLabel(), at)
	if err != nil {
		return TrackCounts{}, fmt.Errorf("request count: %w", err)
	}
	errs, err := c.queryByLabel(ctx, ErrorsQuery(w, d), w.workloadLabel(), at)
	if err != nil {
		return TrackCounts{}, fmt.Errorf("error count: %w", err)
	}
	counts := func(name string) Counts {
		n := total[name]
		e := min(errs[name], n) // extrapolation can round either way
		return Counts{Requests: n, Errors: max(e, 0)}
	}
	return TrackCounts{Canary: counts(w.Canary), Stable: counts(w.Stable)}, nil
}

// RequestDuration returns both tracks' p99 request duration in
// milliseconds over the window ending at; a track without traffic has no
// data.
func (c *Client) RequestDuration(ctx context.Context, w Workloads, d time.Duration, at time.Time) (TrackValues, error) {
	if err := w.validate(d); err != nil {
		return TrackValues{}, err
	}
	p99, err := c.queryByLabel(ctx, DurationQuery(w, d), w.workloadLabel(), at)
	if err != nil {
		return TrackValues{}, fmt.Errorf("request duration: %w", err)
	}
	get := func(name string) Value {
		v, ok := p99[name]
		return Value{V: v, OK: ok}
	}
	return TrackValues{Canary: get(w.Canary), Stable: get(w.Stable)}, nil
}

func (w Workloads) validate(d time.Duration) error {
	if w.Namespace == "" || w.Canary == "" || w.Stable == "" {
		return fmt.Errorf("workloads need a namespace, a canary and a stable name: %+v", w)
	}
	if _, ok := telemetries[w.Series]; !ok {
		return fmt.Errorf("workloads of %s: no built-in queries for series %q", w.Namespace, w.Series)
	}
	if d < time.Second {
		return fmt.Errorf("query window %v is shorter than a second", d)
	}
	return nil
}
