package server

import (
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
)

// TestAppliedFollowsWeightSteps walks two state-of-the-world proxies and one
// delta proxy through weight steps, acknowledging one at a time, and checks
// what Applied says at each point.
func TestAppliedFollowsWeightSteps(t *testing.T) {
	h := startServer(t, Options{}, true)
	r := newRelease("ns", "svc", 8080)
	other := newRelease("ns", "other", 8080)
	names := []string{r.name}
	gen := mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 0))
	mustPublish(t, h.s, "ns/other/8080", other.resources(t, 0))

	conn := dial(t, h.addr)
	a := newSotwClient(t, conn, "proxy-a")
	b := newSotwClient(t, conn, "proxy-b")
	d := newDeltaClient(t, conn, "proxy-d")
	x := newSotwClient(t, conn, "proxy-x") // only watches the other release

	a.request(edsURL, names, "", "", "")
	b.request(edsURL, names, "", "", "")
	d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: edsURL, ResourceNamesSubscribe: names})
	x.request(edsURL, []string{other.name}, "", "", "")
	ra, rb, rd, rx := a.next(), b.next(), d.next(), x.next()
	x.ack(rx, []string{other.name})

	st := h.s.Applied(names, gen)
	if st.Subscribed != 3 || st.Acked != 0 || !slices.Equal(st.Pending, []string{"proxy-a", "proxy-b", "proxy-d"}) {
		t.Fatalf("before any ACK: %+v", st)
	}
	a.ack(ra, names)
	b.ack(rb, names)
	d.ack(rd)
	eventually(t, "initial ACKs", func() bool { return h.s.Applied(names, gen).Acked == 3 })

	for _, w := range []uint32{10, 25, 50, 100} {
		prev := gen
		gen = mustPublish(t, h.s, "ns/svc/8080", r.resources(t, w))
		st := h.s.Applied(names, gen)
		if st.Subscribed != 3 || st.Acked != 0 || len(st.Pending) != 3 || st.Done() {
			t.Fatalf("weight %d before ACKs: %+v", w, st)
		}
		if st := h.s.Applied(names, prev); !st.Done() {
			t.Fatalf("weight %d: previous generation no longer applied: %+v", w, st)
		}
		ra, rb, rd := a.next(), b.next(), d.next()
		for _, cla := range [][]byte{ra.GetResources()[0].GetValue(), rb.GetResources()[0].GetValue(), rd.GetResources()[0].GetResource().GetValue()} {
			if hashBytes(cla) != hashBytes(ra.GetResources()[0].GetValue()) {
				t.Fatalf("weight %d: proxies were sent different contents", w)
			}
		}
		if got := canaryWeightOf(decodeCLA(t, ra.GetResources()[0])); got != w {
			t.Fatalf("sent canary weight %d, want %d", got, w)
		}

		a.ack(ra, names)
		eventually(t, "proxy-a ACK", func() bool {
			st := h.s.Applied(names, gen)
			return st.Acked == 1 && slices.Equal(st.Pending, []string{"proxy-b", "proxy-d"})
		})
		d.ack(rd)
		eventually(t, "proxy-d ACK", func() bool {
			st := h.s.Applied(names, gen)
			return st.Acked == 2 && slices.Equal(st.Pending, []string{"proxy-b"})
		})
		b.ack(rb, names)
		eventually(t, "proxy-b ACK", func() bool { return h.s.Applied(names, gen).Done() })
	}

	if st := h.s.Applied([]string{other.name}, gen); st.Subscribed != 1 || !st.Done() {
		t.Fatalf("other release: %+v", st)
	}
	if st := h.s.Applied([]string{"serin/ns/unknown/1"}, gen); st.Subscribed != 0 || !st.Done() {
		t.Fatalf("unknown name: %+v", st)
	}

	var seen bool
	for _, p := range h.s.Proxies() {
		if p.Node != "proxy-d" {
			continue
		}
		seen = true
		if !p.Delta || len(p.Resources) != 1 || p.Resources[0].Sent != gen || p.Resources[0].Acked != gen {
			t.Fatalf("proxy-d status: %+v", p)
		}
	}
	if !seen {
		t.Fatal("proxy-d missing from Proxies()")
	}
	if got := h.metric(t, "serin_xds_connected_proxies", map[string]string{"service": "ads", "mode": "sotw"}); got != 3 {
		t.Fatalf("connected sotw ADS streams %v, want 3", got)
	}
	if got := h.metric(t, "serin_xds_ack_duration_seconds", map[string]string{"type_url": edsURL}); got != 12 {
		t.Fatalf("ACK latencies observed %v, want 12 (3 proxies × 4 steps)", got)
	}
}

// TestAppliedSubscriptions covers wildcard CDS, unsubscribing, and streams
// that go away.
func TestAppliedSubscriptions(t *testing.T) {
	h := startServer(t, Options{}, true)
	r := newRelease("ns", "svc", 8080)
	names := []string{r.name}
	gen := mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 20))

	conn := dial(t, h.addr)
	envoy := newSotwClient(t, conn, "envoy")
	envoy.request(cdsURL, nil, "", "", "") // wildcard
	cds := envoy.next()
	envoy.ack(cds, nil)
	eventually(t, "wildcard CDS ACK", func() bool {
		st := h.s.Applied(names, gen)
		return st.Subscribed == 1 && st.Done()
	})

	envoy.request(edsURL, names, "", "", "")
	eds := envoy.next()
	envoy.ack(eds, names)
	gen = mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 30))
	eds = envoy.next()
	if st := h.s.Applied(names, gen); st.Subscribed != 1 || st.Done() {
		t.Fatalf("EDS step not yet ACKed: %+v", st)
	}
	// Unsubscribing from every endpoint resource leaves only the CDS
	// subscription, which is up to date.
	envoy.ack(eds, nil)
	eventually(t, "EDS unsubscribe", func() bool { return h.s.Applied(names, gen).Done() })

	late := newSotwClient(t, conn, "late")
	late.request(edsURL, names, "", "", "")
	late.next()
	if st := h.s.Applied(names, gen); st.Subscribed != 2 || !slices.Equal(st.Pending, []string{"late"}) {
		t.Fatalf("late proxy: %+v", st)
	}
	late.cancel()
	eventually(t, "closed stream forgotten", func() bool {
		st := h.s.Applied(names, gen)
		return st.Subscribed == 1 && st.Done()
	})
}

// TestPlainServices: the type-specific services (Istio's Envoys use them for
// a second source) are tracked like ADS, including requests that leave the
// type URL implicit.
func TestPlainServices(t *testing.T) {
	h := startServer(t, Options{}, true)
	r := newRelease("ns", "svc", 8080)
	names := []string{r.name}
	gen := mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 40))
	conn := dial(t, h.addr)
	ctx := t.Context()

	sotw, err := endpointservice.NewEndpointDiscoveryServiceClient(conn).StreamEndpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "plain-sotw"}
	if err := sotw.Send(&discoveryv3.DiscoveryRequest{Node: node, ResourceNames: names}); err != nil {
		t.Fatal(err)
	}
	resp, err := sotw.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := sotw.Send(&discoveryv3.DiscoveryRequest{ResourceNames: names, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}

	delta, err := clusterservice.NewClusterDiscoveryServiceClient(conn).DeltaClusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := delta.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "plain-delta"}, ResourceNamesSubscribe: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	dresp, err := delta.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(dresp.GetResources()) != 1 || dresp.GetResources()[0].GetName() != r.name {
		t.Fatalf("delta CDS: %v", dresp)
	}
	if err := delta.Send(&discoveryv3.DeltaDiscoveryRequest{ResponseNonce: dresp.GetNonce()}); err != nil {
		t.Fatal(err)
	}

	eventually(t, "plain streams applied", func() bool {
		st := h.s.Applied(names, gen)
		return st.Subscribed == 2 && st.Done()
	})
	var services []string
	for _, p := range h.s.Proxies() {
		services = append(services, p.Service+"/"+modeName(p.Delta))
	}
	slices.Sort(services)
	if want := []string{"cds/delta", "eds/sotw"}; !slices.Equal(services, want) {
		t.Fatalf("services %v, want %v", services, want)
	}
}
