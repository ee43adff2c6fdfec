package analysis

import (
	"time"
)

// Locality sub-zones of the two tracks in load reports.
const (
	SubZoneStable = "stable"
	SubZoneCanary = "canary"
)

// LoadCounts are the requests the data plane reported for one locality
// over a time range.
type LoadCounts struct {
	// Success and Errors are completed requests; Issued includes those
	// still in flight.
	Success, Errors, Issued uint64
}

// LoadReporter is what analysis needs from serin's LRS endpoint: the
// counts reported for an xDS cluster between since and until, keyed by
// locality sub-zone ("stable", "canary").
type LoadReporter interface {
	LoadReports(cluster string, since, until time.Time) map[string]LoadCounts
}

// LoadReportsFunc adapts a function to LoadReporter, e.g. a closure that
// converts the xDS server's own count type.
type LoadReportsFunc func(cluster string, since, until time.Time) map[string]LoadCounts

// LoadReports implements LoadReporter.
func (f LoadReportsFunc) LoadReports(cluster string, since, until time.Time) map[string]LoadCounts {
	return f(cluster, since, until)
}

var _ LoadReporter = LoadReportsFunc(nil)

// CountsFromLoadReports sums the tracks' counts over the given clusters
// (the weighted cluster and the per-track ones) between since and until.
func CountsFromLoadReports(r LoadReporter, clusters []string, since, until time.Time) ErrorCounts {
	var c ErrorCounts
	for _, cl := range clusters {
		reports := r.LoadReports(cl, since, until)
		can, st := reports[SubZoneCanary], reports[SubZoneStable]
		c.CanaryRequests += float64(can.Success + can.Errors)
		c.CanaryErrors += float64(can.Errors)
		c.StableRequests += float64(st.Success + st.Errors)
		c.StableErrors += float64(st.Errors)
	}
	return c
}

// SuccessRate is the percentage of a track's requests that did not fail;
// no requests is no data.
func SuccessRate(requests, errors float64) Value {
	if requests <= 0 {
		return Value{}
	}
	return Value{V: 100 * (1 - min(errors, requests)/requests), OK: true}
}
