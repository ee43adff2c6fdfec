package analysis

import (
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// LoadReporter is what analysis needs from serin's LRS endpoint: the
// counts reported for an xDS cluster between since and until, by track
// (the locality sub-zone), to every replica. Counts of a window must never
// shrink as time passes (a restart included): the comparative judge's
// bound rests on cumulative counts.
type LoadReporter interface {
	LoadReports(cluster string, since, until time.Time) map[v1alpha1.Track]v1alpha1.LoadCounts
}

// CountsFromLoadReports sums the tracks' counts over the given clusters
// (the weighted cluster and the per-track ones) between since and until.
func CountsFromLoadReports(r LoadReporter, clusters []string, since, until time.Time) ErrorCounts {
	var c ErrorCounts
	for _, cl := range clusters {
		reports := r.LoadReports(cl, since, until)
		can, st := reports[v1alpha1.TrackCanary], reports[v1alpha1.TrackStable]
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
