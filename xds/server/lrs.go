package server

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// loadBucket holds the counts received during one second, by locality
// sub_zone (the track).
type loadBucket struct {
	sec int64
	// width is 1 for what arrived here, more for coarse buckets seeded
	// from a snapshot.
	width  int64
	byZone map[v1alpha1.Track]v1alpha1.LoadCounts
}

// loadStore aggregates load reports per cluster into per-second buckets and
// forgets buckets older than the retention.
type loadStore struct {
	retention time.Duration

	mu        sync.Mutex
	clusters  map[string][]loadBucket // ascending sec
	lastPrune int64
	// gen counts the changes of counts.
	gen uint64
}

func newLoadStore(retention time.Duration) *loadStore {
	return &loadStore{retention: retention, clusters: map[string][]loadBucket{}}
}

// add records the stats of one report received at now. A report covers the
// interval that ends when it is sent; with one-second reporting, filing it
// under the second it arrived in is accurate to a bucket.
func (ls *loadStore) add(now time.Time, stats []*endpointv3.ClusterStats) {
	sec := now.Unix()
	oldest := now.Add(-ls.retention).Unix()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, cs := range stats {
		name := loadClusterName(cs)
		if name == "" || len(cs.GetUpstreamLocalityStats()) == 0 {
			continue
		}
		b := ls.bucket(name, sec)
		ls.gen++
		for _, l := range cs.GetUpstreamLocalityStats() {
			c := b.byZone[v1alpha1.Track(l.GetLocality().GetSubZone())]
			c.Add(v1alpha1.LoadCounts{
				Success: l.GetTotalSuccessfulRequests(),
				Errors:  l.GetTotalErrorRequests(),
				Issued:  l.GetTotalIssuedRequests(),
			})
			b.byZone[v1alpha1.Track(l.GetLocality().GetSubZone())] = c
		}
	}
	if sec != ls.lastPrune {
		ls.lastPrune = sec
		ls.prune(oldest)
	}
}

// loadClusterName is the cluster a report is filed under.
func loadClusterName(cs *endpointv3.ClusterStats) string {
	if name := cs.GetClusterName(); name != "" {
		return name
	}
	return cs.GetClusterServiceName()
}

// admitLoad keeps the stats a load reporting stream may file: about
// clusters serin serves that the reporter may see, on at most
// MaxLoadClusters distinct clusters per stream (seen holds those admitted
// so far). The rest are dropped and counted, so junk names never reach the
// store.
func (s *Server) admitLoad(p principal, seen map[string]struct{}, stats []*endpointv3.ClusterStats) []*endpointv3.ClusterStats {
	names := make([]string, len(stats))
	for i, cs := range stats {
		names[i] = loadClusterName(cs)
	}
	published := s.visible(principal{open: true}, kindCluster, names)
	visible := s.visible(p, kindCluster, names)
	var out []*endpointv3.ClusterStats
	for i, cs := range stats {
		_, known := seen[names[i]]
		switch {
		case !published[i]:
			s.metrics.dropped.WithLabelValues("unknown").Inc()
		case !visible[i]:
			s.metrics.dropped.WithLabelValues("denied").Inc()
		case !known && len(seen) >= s.opts.MaxLoadClusters:
			s.metrics.dropped.WithLabelValues("limit").Inc()
		default:
			seen[names[i]] = struct{}{}
			out = append(out, cs)
		}
	}
	return out
}

// bucket returns the bucket of sec for a cluster, creating it in order.
func (ls *loadStore) bucket(cluster string, sec int64) *loadBucket {
	bs := ls.clusters[cluster]
	i := sort.Search(len(bs), func(i int) bool { return bs[i].sec >= sec })
	if i == len(bs) || bs[i].sec != sec {
		bs = append(bs, loadBucket{})
		copy(bs[i+1:], bs[i:])
		bs[i] = loadBucket{sec: sec, width: 1, byZone: map[v1alpha1.Track]v1alpha1.LoadCounts{}}
		ls.clusters[cluster] = bs
	}
	return &bs[i]
}

func (ls *loadStore) prune(oldest int64) {
	for name, bs := range ls.clusters {
		i := sort.Search(len(bs), func(i int) bool { return bs[i].sec+bs[i].width > oldest })
		switch {
		case i == len(bs):
			delete(ls.clusters, name)
		case i > 0:
			ls.clusters[name] = append(bs[:0:0], bs[i:]...)
		}
	}
}

// reports sums the buckets of cluster that overlap [since, until), by
// sub_zone.
func (ls *loadStore) reports(cluster string, since, until time.Time) map[v1alpha1.Track]v1alpha1.LoadCounts {
	out := map[v1alpha1.Track]v1alpha1.LoadCounts{}
	from, to := windowSeconds(since, until)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, b := range ls.clusters[cluster] {
		if b.sec >= to || b.sec+b.width <= from {
			continue
		}
		for zone, c := range b.byZone {
			sum := out[zone]
			sum.Add(c)
			out[zone] = sum
		}
	}
	return out
}

// snapshot copies the store's stable and canary counts, with its
// generation.
func (ls *loadStore) snapshot() (LoadSnapshot, uint64) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	out := make(LoadSnapshot, len(ls.clusters))
	for name, bs := range ls.clusters {
		cp := make([]LoadBucket, 0, len(bs))
		for _, b := range bs {
			lb := LoadBucket{Start: b.sec, Width: b.width, Stable: b.byZone[v1alpha1.TrackStable], Canary: b.byZone[v1alpha1.TrackCanary]}
			if !lb.empty() {
				cp = append(cp, lb)
			}
		}
		if len(cp) > 0 {
			out[name] = cp
		}
	}
	return out, ls.gen
}

// seed adds a snapshot's counts to the store.
func (ls *loadStore) seed(snap LoadSnapshot) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.gen++
	for name, bs := range snap {
		for _, lb := range bs {
			b := ls.bucket(name, lb.Start)
			b.width = max(b.width, lb.Width)
			for track, c := range map[v1alpha1.Track]v1alpha1.LoadCounts{v1alpha1.TrackStable: lb.Stable, v1alpha1.TrackCanary: lb.Canary} {
				sum := b.byZone[track]
				sum.Add(c)
				b.byZone[track] = sum
			}
		}
	}
}

// LoadReports returns the load reported for cluster between since and until,
// by locality sub_zone (the track name), at one-second granularity. Only
// reports received within the retention are kept.
func (s *Server) LoadReports(cluster string, since, until time.Time) map[v1alpha1.Track]v1alpha1.LoadCounts {
	return s.loads.reports(cluster, since, until)
}

// lrsService implements envoy.service.load_stats.v3. It asks every client for
// all its clusters at the configured interval. grpc-go reports only on
// clusters whose CDS resource names an LRS server (lrs_server: {self: {}}).
type lrsService struct {
	lrsv3.UnimplementedLoadReportingServiceServer
	s *Server
}

func (l *lrsService) StreamLoadStats(stream lrsv3.LoadReportingService_StreamLoadStatsServer) error {
	s := l.s
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("receiving first load report: %w", err)
	}
	node := first.GetNode().GetId()
	s.metrics.connected.WithLabelValues("lrs", "sotw").Inc()
	defer s.metrics.connected.WithLabelValues("lrs", "sotw").Dec()
	s.log.V(1).Info("load reporting stream opened", "node", node)

	if err := stream.Send(&lrsv3.LoadStatsResponse{
		SendAllClusters:       true,
		LoadReportingInterval: durationpb.New(s.opts.LoadReportInterval),
	}); err != nil {
		return fmt.Errorf("sending load reporting request to %s: %w", node, err)
	}
	who := s.principal(stream.Context())
	seen := map[string]struct{}{}
	req := first
	for {
		if stats := s.admitLoad(who, seen, req.GetClusterStats()); len(stats) > 0 {
			s.loads.add(s.now(), stats)
			s.metrics.reports.Inc()
		}
		req, err = stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || stream.Context().Err() != nil {
				return nil
			}
			return fmt.Errorf("receiving load report from %s: %w", node, err)
		}
	}
}
