package server

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
)

// TestLinearCacheNACKBehaviour pins down what go-control-plane v0.14's
// LinearCache does with a state-of-the-world NACK, and that the guard turns
// the resending cases into a parked watch.
func TestLinearCacheNACKBehaviour(t *testing.T) {
	const prefix = "p-"
	for _, tc := range []struct {
		name       string
		version    string // version_info of the NACK
		rawResends bool
	}{
		{"first response rejected", "", true},
		{"rejected after a restart", "oldprocess-7", true},
		{"rejected update", prefix + "1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, guarded := range []bool{false, true} {
				lc := cache.NewLinearCache(cdsURL, cache.WithVersionPrefix(prefix), cache.WithLogger(gcpLogger{log: testLogger(t)}))
				if err := lc.UpdateResource("x", testCluster("x")); err != nil {
					t.Fatal(err)
				}
				var c cache.Cache = lc
				if guarded {
					var caches [numKinds]*cache.LinearCache
					for k := range caches {
						caches[k] = cache.NewLinearCache(kind(k).typeURL(), cache.WithVersionPrefix(prefix))
					}
					caches[kindCluster] = lc
					c = newGuardedCache(caches, prefix, testLogger(t))
				}
				// The proxy subscribes to all clusters and is sent x.
				sub := stream.NewSotwSubscription(nil, true)
				ch := make(chan cache.Response, 1)
				if _, err := c.CreateWatch(&discoveryv3.DiscoveryRequest{TypeUrl: cdsURL, VersionInfo: tc.version}, sub, ch); err != nil {
					t.Fatal(err)
				}
				sub.SetReturnedResources((<-ch).GetReturnedResources())
				// It rejects x, reporting the last version it accepted.
				nack := &discoveryv3.DiscoveryRequest{TypeUrl: cdsURL, VersionInfo: tc.version,
					ErrorDetail: &statuspb.Status{Message: "rejected"}}
				cancel, err := c.CreateWatch(nack, sub, ch)
				if err != nil {
					t.Fatal(err)
				}
				var resent bool
				select {
				case <-ch:
					resent = true
				default:
				}
				if want := tc.rawResends && !guarded; resent != want {
					t.Fatalf("guarded=%v: resent=%v, want %v", guarded, resent, want)
				}
				if !resent {
					// The parked watch fires on the next real change.
					if err := lc.UpdateResource("y", testCluster("y")); err != nil {
						t.Fatal(err)
					}
					select {
					case <-ch:
					default:
						t.Fatalf("guarded=%v: parked watch did not fire on a change", guarded)
					}
				}
				if cancel != nil {
					cancel()
				}
			}
		})
	}
}

// TestNACKRestoresLastGoodContentOnce: a state-of-the-world proxy rejects a
// weight step. It is sent the rejected content once, then the content it last
// acknowledged, and nothing else; the NACK is counted, reported to the hook
// and by Applied; the rejected content is not sent again until a Publish
// changes the resource.
func TestNACKRestoresLastGoodContentOnce(t *testing.T) {
	h := startServer(t, Options{}, true)
	r := newRelease("ns", "svc", 8080)
	sentinel := newRelease("ns", "sentinel", 8080)
	names := []string{r.name}
	both := []string{r.name, sentinel.name}
	gen1 := mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 10))
	mustPublish(t, h.s, "ns/sentinel/8080", sentinel.resources(t, 0))

	conn := dial(t, h.addr)
	c := newSotwClient(t, conn, "proxy-n")
	good := newSotwClient(t, conn, "proxy-g") // accepts everything
	c.request(edsURL, both, "", "", "")
	good.request(edsURL, names, "", "", "")
	first := c.next()
	if len(first.GetResources()) != 2 {
		t.Fatalf("first response has %d resources, want 2", len(first.GetResources()))
	}
	c.ack(first, both)
	good.ack(good.next(), names)
	var original []byte
	for _, a := range first.GetResources() {
		if n, _ := resourceName(a.GetValue()); n == r.name {
			original = a.GetValue()
		}
	}

	gen2 := mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 20))
	bad := c.next()
	if w := canaryWeightOf(decodeCLA(t, bad.GetResources()[0])); w != 20 {
		t.Fatalf("step sent weight %d, want 20", w)
	}
	good.ack(good.next(), names)
	c.request(edsURL, both, first.GetVersionInfo(), bad.GetNonce(), "weight rejected")

	restored := c.next()
	if len(restored.GetResources()) != 1 || !bytes.Equal(restored.GetResources()[0].GetValue(), original) {
		t.Fatalf("after the NACK got %d resources, want the last acknowledged assignment", len(restored.GetResources()))
	}
	c.ack(restored, both)
	// Every subscriber gets the restored content, including the proxy that
	// had accepted the step.
	rg := good.next()
	if w := canaryWeightOf(decodeCLA(t, rg.GetResources()[0])); w != 10 {
		t.Fatalf("accepting proxy sent weight %d after the revert, want 10", w)
	}
	good.ack(rg, names)

	eventually(t, "NACK reported", func() bool {
		st := h.s.Applied(names, gen2)
		return len(st.Nacked) == 1 && len(st.Pending) == 1
	})
	st := h.s.Applied(names, gen2)
	n := st.Nacked[0]
	if n.Node != "proxy-n" || n.Cluster != "test" || n.TypeURL != edsURL || n.Resource != r.name || n.Message != "weight rejected" {
		t.Fatalf("NACK %+v", n)
	}
	if st.Acked != 0 || !slices.Equal(st.Pending, []string{"proxy-g"}) || !slices.Equal(st.Rejected, []string{edsURL + " " + r.name}) {
		t.Fatalf("Applied(gen2) = %+v", st)
	}
	if st := h.s.Applied(names, gen1); !st.Done() || st.Subscribed != 2 {
		t.Fatalf("Applied(gen1) after the revert = %+v", st)
	}
	eventually(t, "hook call", func() bool { return len(h.nackHookCalls()) == 1 })
	if got := h.nackHookCalls()[0]; got.Resource != r.name || got.Node != "proxy-n" {
		t.Fatalf("hook got %+v", got)
	}
	if got := h.metric(t, "serin_xds_nack_total", map[string]string{"type_url": edsURL}); got != 1 {
		t.Fatalf("serin_xds_nack_total = %v, want 1", got)
	}

	// Nothing else is queued: the next thing the proxy sees is a change to
	// another resource.
	sends := h.metric(t, "serin_xds_sends_total", map[string]string{"type_url": edsURL})
	mustPublish(t, h.s, "ns/sentinel/8080", sentinel.resources(t, 50))
	sent := c.next()
	if got := sotwNames(t, sent); !slices.Equal(got, []string{sentinel.name}) {
		t.Fatalf("after the revert the proxy got %v, want only the sentinel", got)
	}
	c.ack(sent, both)
	c.none(200 * time.Millisecond)
	if got := h.metric(t, "serin_xds_sends_total", map[string]string{"type_url": edsURL}); got != sends+1 {
		t.Fatalf("EDS sends went from %v to %v, want one more", sends, got)
	}

	// Publishing the rejected content again changes nothing.
	gen3 := mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 20))
	c.none(100 * time.Millisecond)
	if st := h.s.Applied(names, gen3); len(st.Nacked) != 1 {
		t.Fatalf("Applied(gen3) = %+v, want the NACK still reported", st)
	}

	// A new content is served again.
	gen4 := mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 30))
	next := c.next()
	if w := canaryWeightOf(decodeCLA(t, next.GetResources()[0])); w != 30 {
		t.Fatalf("after a new publish got weight %d, want 30", w)
	}
	c.ack(next, both)
	good.ack(good.next(), names)
	eventually(t, "new content applied", func() bool { return h.s.Applied(names, gen4).Done() })
	if st := h.s.Applied(names, gen4); len(st.Rejected) != 0 || len(st.Nacked) != 0 {
		t.Fatalf("Applied(gen4) = %+v", st)
	}
}

// TestDeltaNACKRestoresLastGoodContentOnce is the same story over delta xDS.
func TestDeltaNACKRestoresLastGoodContentOnce(t *testing.T) {
	h := startServer(t, Options{}, true)
	r := newRelease("ns", "svc", 8080)
	sentinel := newRelease("ns", "sentinel", 8080)
	names := []string{r.name}
	mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 10))
	mustPublish(t, h.s, "ns/sentinel/8080", sentinel.resources(t, 0))

	d := newDeltaClient(t, dial(t, h.addr), "proxy-d")
	d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: edsURL, ResourceNamesSubscribe: []string{r.name, sentinel.name}})
	first := d.next()
	d.ack(first)

	gen2 := mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 20))
	bad := d.next()
	if len(bad.GetResources()) != 1 || canaryWeightOf(decodeCLA(t, bad.GetResources()[0].GetResource())) != 20 {
		t.Fatalf("step response: %v", bad)
	}
	d.nack(bad, "weight rejected")
	restored := d.next()
	if len(restored.GetResources()) != 1 || canaryWeightOf(decodeCLA(t, restored.GetResources()[0].GetResource())) != 10 {
		t.Fatalf("after the NACK: %v", restored)
	}
	d.ack(restored)

	mustPublish(t, h.s, "ns/sentinel/8080", sentinel.resources(t, 50))
	next := d.next()
	if len(next.GetResources()) != 1 || next.GetResources()[0].GetName() != sentinel.name {
		t.Fatalf("after the revert the proxy got %v, want only the sentinel", next)
	}
	d.ack(next)
	d.none(200 * time.Millisecond)

	eventually(t, "NACK reported", func() bool { return len(h.s.Applied(names, gen2).Nacked) == 1 })
	eventually(t, "hook call", func() bool { return len(h.nackHookCalls()) == 1 })
	if got := h.metric(t, "serin_xds_nack_total", map[string]string{"type_url": edsURL}); got != 1 {
		t.Fatalf("serin_xds_nack_total = %v, want 1", got)
	}
	if got := h.metric(t, "serin_xds_sends_total", map[string]string{"type_url": edsURL}); got != 4 {
		t.Fatalf("EDS sends = %v, want 4 (initial, step, revert, sentinel)", got)
	}
}

// TestNACKOfFirstResponseIsNotResent: a proxy that rejects the very first
// cluster list (so it has nothing to go back to, and its NACK carries an
// empty version) is not sent the same list again.
func TestNACKOfFirstResponseIsNotResent(t *testing.T) {
	h := startServer(t, Options{}, true)
	r := newRelease("ns", "svc", 8080)
	gen := mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 0))

	c := newSotwClient(t, dial(t, h.addr), "proxy-f")
	c.request(cdsURL, nil, "", "", "")
	first := c.next()
	c.request(cdsURL, nil, "", first.GetNonce(), "cluster rejected")
	c.none(300 * time.Millisecond)
	if got := h.metric(t, "serin_xds_sends_total", map[string]string{"type_url": cdsURL}); got != 1 {
		t.Fatalf("CDS sends = %v, want 1", got)
	}
	eventually(t, "NACK reported", func() bool { return len(h.s.Applied([]string{r.name}, gen).Nacked) == 1 })

	// A real change is sent (the full list, as state of the world requires).
	res := r.resources(t, 0)
	res.Clusters = append(res.Clusters, testCluster(r.name+"/canary"))
	slices.SortFunc(res.Clusters, func(a, b *clusterv3.Cluster) int { return strings.Compare(a.GetName(), b.GetName()) })
	gen = mustPublish(t, h.s, "ns/svc/8080", res)
	next := c.next()
	if len(next.GetResources()) != 2 {
		t.Fatalf("after a change got %d clusters, want 2", len(next.GetResources()))
	}
	c.ack(next, nil)
	eventually(t, "change applied", func() bool { return h.s.Applied([]string{r.name}, gen).Done() })
}
