package prom

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/serin-dev/serin/api/querytemplate"
)

// Workloads names the two tracks of a release as Istio labels them:
// destination_workload is the Deployment name, destination_workload_namespace
// its namespace.
type Workloads struct {
	Namespace string
	// Canary is the canary copy's Deployment (<target>-canary).
	Canary string
	// Stable is the user's Deployment (<target>).
	Stable string
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
var GRPCServerErrorCodes = []string{"2", "4", "12", "13", "14", "15"}

const workloadLabel = "destination_workload"

// selector is the label matcher of both tracks' server-side telemetry.
func (w Workloads) selector() string {
	names := []string{regexp.QuoteMeta(w.Stable), regexp.QuoteMeta(w.Canary)}
	return fmt.Sprintf(`reporter="destination",destination_workload_namespace=%s,destination_workload=~%s`,
		querytemplate.QuoteString(w.Namespace), querytemplate.QuoteString(strings.Join(names, "|")))
}

func window(d time.Duration) string {
	return querytemplate.FormatDuration(d.Truncate(time.Second))
}

// RequestsQuery counts each track's requests over the window.
func RequestsQuery(w Workloads, d time.Duration) string {
	return fmt.Sprintf(`sum by (destination_workload) (increase(istio_requests_total{%s}[%s]))`, w.selector(), window(d))
}

// ErrorsQuery counts each track's failed requests over the window: HTTP 5xx,
// plus gRPC server errors carried in a non-5xx response. The two series
// sets are disjoint (they differ in response_code), so "or" adds them.
func ErrorsQuery(w Workloads, d time.Duration) string {
	sel, win := w.selector(), window(d)
	return fmt.Sprintf(`sum by (destination_workload) (increase(istio_requests_total{%s,response_code=~"5.."}[%s]) or increase(istio_requests_total{%s,response_code!~"5..",grpc_response_status=~"%s"}[%s]))`,
		sel, win, sel, strings.Join(GRPCServerErrorCodes, "|"), win)
}

// DurationQuery is each track's p99 request duration in milliseconds.
func DurationQuery(w Workloads, d time.Duration) string {
	return fmt.Sprintf(`histogram_quantile(0.99, sum by (le, destination_workload) (rate(istio_request_duration_milliseconds_bucket{%s}[%s])))`,
		w.selector(), window(d))
}

// RequestCounts returns both tracks' request and error counts over the
// window ending at. A track with no series has zero requests.
func (c *Client) RequestCounts(ctx context.Context, w Workloads, d time.Duration, at time.Time) (TrackCounts, error) {
	if err := w.validate(d); err != nil {
		return TrackCounts{}, err
	}
	total, err := c.queryByLabel(ctx, RequestsQuery(w, d), workloadLabel, at)
	if err != nil {
		return TrackCounts{}, fmt.Errorf("request count: %w", err)
	}
	errs, err := c.queryByLabel(ctx, ErrorsQuery(w, d), workloadLabel, at)
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
	p99, err := c.queryByLabel(ctx, DurationQuery(w, d), workloadLabel, at)
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
	if d < time.Second {
		return fmt.Errorf("query window %v is shorter than a second", d)
	}
	return nil
}
