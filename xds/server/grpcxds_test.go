package server

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/xds"
)

// backend is a plain gRPC server (health service) on a loopback port.
func backend(t *testing.T) netip.AddrPort {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return netip.MustParseAddrPort(lis.Addr().String())
}

// TestGRPCXDSClientHonoursLocalityWeights resolves xds:///svc.ns:8080 with
// grpc-go's own xDS client against serin, and checks that the share of RPCs
// reaching the canary backend follows the EDS locality weights, that a
// weight step is in force once Applied reports it, and that grpc-go's load
// reports add up to the RPCs sent.
func TestGRPCXDSClientHonoursLocalityWeights(t *testing.T) {
	h := startServer(t, Options{}, true)
	r := newRelease("ns", "svc", 8080)
	stable, canary := backend(t), backend(t)
	r.stable, r.canary = []netip.AddrPort{stable}, []netip.AddrPort{canary}
	names := []string{r.name, r.listener}
	gen := mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 20))

	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "grpc-client-1", "cluster": "test"}
	}`, h.addr)
	resolver, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///"+r.listener, grpc.WithResolvers(resolver),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := healthpb.NewHealthClient(conn)
	start := time.Now()

	var mu sync.Mutex
	total := map[string]uint64{}
	// run sends n RPCs from 8 goroutines and returns how many reached canary.
	run := func(n int) int {
		t.Helper()
		counts := map[netip.AddrPort]int{}
		var wg sync.WaitGroup
		var failed error
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < n; i += 8 {
					var p peer.Peer
					ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
					_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true))
					cancel()
					mu.Lock()
					if err != nil {
						failed = err
					} else {
						counts[netip.MustParseAddrPort(p.Addr.String())]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if failed != nil {
			t.Fatalf("RPC failed: %v", failed)
		}
		if counts[stable]+counts[canary] != n {
			t.Fatalf("RPCs reached %v, want only the two backends", counts)
		}
		total["stable"] += uint64(counts[stable])
		total["canary"] += uint64(counts[canary])
		return counts[canary]
	}
	within := func(got, n int, p float64) {
		t.Helper()
		mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
		if math.Abs(float64(got)-mean) > 4*sd {
			t.Fatalf("canary got %d of %d RPCs, want %.0f ± %.0f (4 sd)", got, n, mean, 4*sd)
		}
		t.Logf("canary got %d of %d RPCs (expected %.0f ± %.0f)", got, n, mean, 4*sd)
	}

	run(1) // connects and resolves all four resource types
	eventually(t, "grpc-go ACKs", func() bool {
		st := h.s.Applied(names, gen)
		return st.Subscribed == 1 && st.Done()
	})
	for _, p := range h.s.Proxies() {
		if p.Node != "grpc-client-1" || len(p.Resources) != 4 {
			t.Fatalf("grpc-go stream: %+v", p)
		}
	}
	const n = 4000
	within(run(n), n, 0.2)

	gen = mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 50))
	eventually(t, "grpc-go ACKs the step", func() bool { return h.s.Applied(names, gen).Done() })
	within(run(n), n, 0.5)

	// grpc-go reports per locality every second; the sums must match. (Checked
	// before a locality is removed: an RPC that grpc-go transparently retries
	// elsewhere when the removed locality's connection closes is reported on
	// both.)
	var got map[v1alpha1.Track]v1alpha1.LoadCounts
	for deadline := time.Now().Add(2 * waitTimeout); ; time.Sleep(50 * time.Millisecond) {
		got = h.s.LoadReports(r.name, start.Add(-time.Second), time.Now().Add(time.Second))
		if got["stable"].Success == total["stable"] && got["canary"].Success == total["canary"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("load reports %v, RPCs sent %v", got, total)
		}
	}
	if got["canary"].Errors != 0 || got["canary"].Issued != total["canary"] || got["stable"].Issued != total["stable"] {
		t.Fatalf("load reports %v, sent %v", got, total)
	}

	// grpc-go ACKs a response once it has validated it; the new picker is
	// installed asynchronously just after. Canary must stop receiving RPCs
	// promptly after the ACK, and then for good.
	gen = mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 0))
	eventually(t, "grpc-go ACKs the rollback", func() bool { return h.s.Applied(names, gen).Done() })
	acked := time.Now()
	var lastCanary time.Time
	for streak := 0; streak < 500; {
		if time.Since(acked) > waitTimeout {
			t.Fatal("canary still receives RPCs at weight 0")
		}
		if run(1) == 1 {
			lastCanary, streak = time.Now(), 0
		} else {
			streak++
		}
	}
	if lag := lastCanary.Sub(acked); lag > time.Second {
		t.Fatalf("canary received RPCs %v after the ACK of weight 0", lag)
	} else if !lastCanary.IsZero() {
		t.Logf("last canary RPC %v after the ACK of weight 0", lag)
	}

}
