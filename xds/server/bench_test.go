package server

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"

	"github.com/serin-dev/serin/xds/translate"
)

// BenchmarkWeightStepAllACKed connects 1,000 ADS streams (ten per
// connection, or one each) that ACK everything, all subscribed to one release's
// assignment, and measures per weight step the time from Publish to the
// last of the 1,000 ACKs being sent (ack-*), and to Applied, polled every
// 2ms, reporting all of them processed (applied-*).
func BenchmarkWeightStepAllACKed(b *testing.B) {
	for _, delta := range []bool{false, true} {
		for _, perConn := range []int{10, 1} {
			b.Run(fmt.Sprintf("%s/streams-per-conn=%d", modeName(delta), perConn), func(b *testing.B) {
				benchWeightStep(b, delta, 1000, perConn)
			})
		}
	}
}

func benchWeightStep(b *testing.B, delta bool, streams, perConn int) {
	h := startServer(b, Options{Logger: logr.Discard()}, true)
	r := newRelease("ns", "svc", 8080)
	names := []string{r.name}
	gen := mustPublish(b, h.s, "ns/svc/8080", r.resources(b, 0))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	var conn *grpc.ClientConn
	for i := range streams {
		if i%perConn == 0 {
			conn = dial(b, h.addr)
		}
		node := &corev3.Node{Id: fmt.Sprintf("proxy-%04d", i), Cluster: "bench"}
		ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
		if delta {
			st, err := ads.DeltaAggregatedResources(ctx)
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() { ackDelta(st, node, names) })
		} else {
			st, err := ads.StreamAggregatedResources(ctx)
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() { ackSotw(st, node, names) })
		}
	}
	waitAll := func(gen Generation) {
		for {
			if st := h.s.Applied(names, gen); st.Subscribed == streams && st.Done() {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitAll(gen)

	var acked, applied []time.Duration
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		gen = mustPublish(b, h.s, "ns/svc/8080", r.resources(b, uint32(1+i%99)))
		waitAll(gen)
		applied = append(applied, time.Since(start))
		acked = append(acked, time.Unix(0, lastAck.Load()).Sub(start))
	}
	b.StopTimer()
	// Process CPU (server, 1,000 clients and the polling) per step: a
	// figure that does not depend on what else the machine is running.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(len(applied))/1e6, "cpu-ms/step")
	report := func(prefix string, d []time.Duration) {
		slices.Sort(d)
		q := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))]) / 1e6 }
		b.ReportMetric(q(0.5), prefix+"-p50-ms")
		b.ReportMetric(q(0.99), prefix+"-p99-ms")
	}
	report("ack", acked)
	report("applied", applied)
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// lastAck is the time the benchmark clients last sent an ACK.
var lastAck atomic.Int64

func noteAck() {
	now := time.Now().UnixNano()
	for {
		old := lastAck.Load()
		if old >= now || lastAck.CompareAndSwap(old, now) {
			return
		}
	}
}

func ackSotw(st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, node *corev3.Node, names []string) {
	if st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: edsURL, ResourceNames: names}) != nil {
		return
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return
		}
		if st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: edsURL, ResourceNames: names,
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}) != nil {
			return
		}
		noteAck()
	}
}

func ackDelta(st discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient, node *corev3.Node, names []string) {
	if st.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: edsURL, ResourceNamesSubscribe: names}) != nil {
		return
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return
		}
		if st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: edsURL, ResponseNonce: resp.GetNonce()}) != nil {
			return
		}
		noteAck()
	}
}

// BenchmarkPublishReleases publishes 1,000 and 10,000 releases shaped like
// the translator's output (three clusters, three assignments with endpoint
// metadata, a route table and an API listener each) and reports the heap
// retained per release and the Publish time, then the time of a weight step
// with that many releases in place.
func BenchmarkPublishReleases(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("releases=%d", n), func(b *testing.B) {
			var heap, publish, step, encoded float64
			runs := 0
			for range b.N {
				b.StopTimer()
				res := make([]*translate.Resources, n)
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				s, err := New(Options{})
				if err != nil {
					b.Fatal(err)
				}
				for i := range res {
					res[i] = benchRelease(b, i, 10)
				}
				b.StartTimer()
				start := time.Now()
				for i, r := range res {
					mustPublish(b, s, benchKey(i), r)
				}
				publish += float64(time.Since(start).Nanoseconds()) / float64(n)
				b.StopTimer()
				res = nil
				runtime.GC()
				runtime.ReadMemStats(&m1)
				heap += float64(m1.HeapAlloc-m0.HeapAlloc) / float64(n)
				encoded += float64(encodedSize(s)) / float64(n)

				next := benchRelease(b, n/2, 20)
				start = time.Now()
				mustPublish(b, s, benchKey(n/2), next)
				step += float64(time.Since(start).Nanoseconds())
				runtime.KeepAlive(s)
				runs++
				b.StartTimer()
			}
			b.ReportMetric(heap/float64(runs), "heap-B/release")
			b.ReportMetric(encoded/float64(runs), "encoded-B/release")
			b.ReportMetric(publish/float64(runs)/1e3, "publish-µs/release")
			b.ReportMetric(step/float64(runs)/1e3, "step-µs")
		})
	}
}

func benchKey(i int) string { return fmt.Sprintf("ns%d/svc/8080", i) }

// encodedSize sums the encoded size of the current contents (a served
// resource is also held encoded once by the cache).
func encodedSize(s *Server) int {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	n := 0
	for k := range s.idx.entries {
		for _, e := range s.idx.entries[k] {
			if v, ok := e.find(e.served); ok {
				n += len(v.raw)
			}
		}
	}
	return n
}

func benchRelease(b testing.TB, i, canaryWeight int) *translate.Resources {
	base := fmt.Sprintf("serin/ns%d/svc/8080", i)
	ip := func(track, n int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(track), byte(i >> 8), byte(i)}), uint16(8080+n))
	}
	stable := []netip.AddrPort{ip(1, 0), ip(1, 1), ip(1, 2)}
	canary := []netip.AddrPort{ip(2, 0)}
	withMeta := func(cla *endpointv3.ClusterLoadAssignment) *endpointv3.ClusterLoadAssignment {
		for _, l := range cla.GetEndpoints() {
			for _, ep := range l.GetLbEndpoints() {
				ep.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"serin": {Fields: map[string]*structpb.Value{
					"track":    structpb.NewStringValue(l.GetLocality().GetSubZone()),
					"revision": structpb.NewStringValue("7d9f8b6c5d"),
				}}}}
			}
		}
		return cla
	}
	route := testRoute(base, fmt.Sprintf("svc.ns%d.svc.cluster.local", i), base)
	ra := route.VirtualHosts[0].Routes[0].GetRoute()
	ra.Timeout = durationpb.New(15 * time.Second)
	ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx,reset", NumRetries: wrapperspb.UInt32(2)}
	return &translate.Resources{
		Clusters: []*clusterv3.Cluster{testCluster(base), testCluster(base + "/canary"), testCluster(base + "/stable")},
		Endpoints: []*endpointv3.ClusterLoadAssignment{
			withMeta(testCLA(base, uint32(canaryWeight), stable, canary)),
			withMeta(testCLA(base+"/canary", 100, nil, canary)),
			withMeta(testCLA(base+"/stable", 0, stable, nil)),
		},
		Routes:    []*routev3.RouteConfiguration{route},
		Listeners: []*listenerv3.Listener{testAPIListener(b, fmt.Sprintf("svc.ns%d:8080", i), base)},
	}
}

// BenchmarkApplied measures one Applied call with 1,000 streams: all of
// them on the release asked about (the engine's question after a weight
// step of a release with 1,000 proxies), or one on each of 1,000 releases
// (a thousand releases with a proxy each, as in the scale scenario).
func BenchmarkApplied(b *testing.B) {
	for _, releases := range []int{1, 1000} {
		b.Run(fmt.Sprintf("releases=%d", releases), func(b *testing.B) {
			s, err := New(Options{})
			if err != nil {
				b.Fatal(err)
			}
			var names []string
			var gen Generation
			var hashes []contentHash
			for i := range releases {
				r := newRelease(fmt.Sprintf("ns%d", i), "svc", 8080)
				gen = mustPublish(b, s, fmt.Sprintf("ns%d/svc/8080", i), r.resources(b, 10))
				s.idx.mu.RLock()
				hashes = append(hashes, s.idx.entries[kindEndpoint][r.name].served)
				s.idx.mu.RUnlock()
				names = append(names, r.name)
			}
			for i := range 1000 {
				name, h := names[i%releases], hashes[i%releases]
				st := &streamState{key: streamKey{id: int64(i)}, node: fmt.Sprintf("proxy-%04d", i), who: principal{open: true}}
				ts := newTypeState(stream.NewSotwSubscription([]string{name}, false), time.Now())
				ts.acked[name] = h
				st.types[kindEndpoint] = ts
				s.tracker.streams[st.key] = st
				s.tracker.reindex(st)
			}
			asked := names[len(names)-1:]
			want := 1000 / releases
			for b.Loop() {
				if st := s.Applied(asked, gen); !st.Done() || st.Subscribed != want {
					b.Fatalf("%+v", st)
				}
			}
		})
	}
}
