package server

import (
	"context"
	"maps"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"github.com/serin-dev/serin/api/v1alpha1"
)

func localityStats(zone string, ok, failed, issued uint64) *endpointv3.UpstreamLocalityStats {
	return &endpointv3.UpstreamLocalityStats{
		Locality:                &corev3.Locality{Region: "serin", SubZone: zone},
		TotalSuccessfulRequests: ok,
		TotalErrorRequests:      failed,
		TotalIssuedRequests:     issued,
	}
}

// TestLoadReportsAggregatePerSecondAndTrack drives the LRS service with a
// raw stream client and a fake clock.
func TestLoadReportsAggregatePerSecondAndTrack(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	h := startServer(t, Options{Now: clock.Now, LoadReportInterval: 250 * time.Millisecond, LoadRetention: time.Minute}, false)
	const cluster = "serin/ns/svc/8080"
	// Only clusters serin serves are filed.
	mustPublish(t, h.s, "ns/svc/8080", newRelease("ns", "svc", 8080).resources(t, 0))
	mustPublish(t, h.s, "ns/other/80", newRelease("ns", "other", 80).resources(t, 0))

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// LRS is not held back by readiness.
	st, err := lrsv3.NewLoadReportingServiceClient(dial(t, h.addr)).StreamLoadStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&lrsv3.LoadStatsRequest{Node: &corev3.Node{Id: "client-1"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetSendAllClusters() || resp.GetLoadReportingInterval().AsDuration() != 250*time.Millisecond {
		t.Fatalf("LoadStatsResponse = %v", resp)
	}

	t0 := clock.Now()
	report := func(at time.Time, stats ...*endpointv3.ClusterStats) {
		t.Helper()
		clock.Set(at)
		before := h.metric(t, "serin_xds_load_reports_total", nil)
		if err := st.Send(&lrsv3.LoadStatsRequest{ClusterStats: stats}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "report processed", func() bool { return h.metric(t, "serin_xds_load_reports_total", nil) == before+1 })
	}
	stats := func(name string, ls ...*endpointv3.UpstreamLocalityStats) *endpointv3.ClusterStats {
		return &endpointv3.ClusterStats{ClusterName: name, UpstreamLocalityStats: ls}
	}
	report(t0, stats(cluster, localityStats("stable", 90, 1, 91), localityStats("canary", 9, 1, 10)))
	report(t0.Add(500*time.Millisecond), stats(cluster, localityStats("stable", 10, 0, 10)),
		stats("serin/ns/other/80", localityStats("stable", 5, 5, 10)))
	report(t0.Add(1200*time.Millisecond), stats(cluster, localityStats("canary", 20, 0, 20)))
	report(t0.Add(3*time.Second), stats(cluster, localityStats("canary", 0, 7, 7)))

	for _, tc := range []struct {
		name         string
		since, until time.Time
		want         map[v1alpha1.Track]v1alpha1.LoadCounts
	}{
		{"first second", t0, t0.Add(time.Second), map[v1alpha1.Track]v1alpha1.LoadCounts{
			"stable": {Success: 100, Errors: 1, Issued: 101}, "canary": {Success: 9, Errors: 1, Issued: 10}}},
		{"two seconds", t0, t0.Add(2 * time.Second), map[v1alpha1.Track]v1alpha1.LoadCounts{
			"stable": {Success: 100, Errors: 1, Issued: 101}, "canary": {Success: 29, Errors: 1, Issued: 30}}},
		{"partial second at the end counts", t0.Add(time.Second), t0.Add(1100 * time.Millisecond), map[v1alpha1.Track]v1alpha1.LoadCounts{
			"canary": {Success: 20, Issued: 20}}},
		{"later window", t0.Add(2 * time.Second), t0.Add(10 * time.Second), map[v1alpha1.Track]v1alpha1.LoadCounts{
			"canary": {Errors: 7, Issued: 7}}},
		{"empty window", t0.Add(-time.Minute), t0, map[v1alpha1.Track]v1alpha1.LoadCounts{}},
	} {
		if got := h.s.LoadReports(cluster, tc.since, tc.until); !maps.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := h.s.LoadReports("serin/ns/other/80", t0, t0.Add(time.Minute)); got["stable"] != (v1alpha1.LoadCounts{Success: 5, Errors: 5, Issued: 10}) {
		t.Errorf("other cluster: %v", got)
	}

	// Past the retention, old seconds are forgotten.
	report(t0.Add(90*time.Second), stats(cluster, localityStats("stable", 1, 0, 1)))
	if got := h.s.LoadReports(cluster, t0, t0.Add(time.Minute)); len(got) != 0 {
		t.Errorf("reports older than the retention kept: %v", got)
	}
	if got := h.s.LoadReports("serin/ns/other/80", t0, t0.Add(time.Minute)); len(got) != 0 {
		t.Errorf("idle cluster kept past the retention: %v", got)
	}
	if got := h.s.LoadReports(cluster, t0.Add(90*time.Second), t0.Add(91*time.Second)); got["stable"].Success != 1 {
		t.Errorf("latest report: %v", got)
	}
}
