package server

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/serin-dev/serin/xds/translate"
)

func TestCollectRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  *translate.Resources
		want string
	}{
		{"nil cluster", &translate.Resources{Clusters: []*clusterv3.Cluster{nil}}, "nil type.googleapis.com/envoy.config.cluster.v3.Cluster"},
		{"unnamed assignment", &translate.Resources{Endpoints: []*endpointv3.ClusterLoadAssignment{{}}}, "without a name"},
		{"duplicate", &translate.Resources{Clusters: []*clusterv3.Cluster{testCluster("a"), testCluster("a")}}, `"a" listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := collect(tc.res)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("collect: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	got, err := collect(nil)
	if err != nil {
		t.Fatal(err)
	}
	for k := range got {
		if len(got[k]) != 0 {
			t.Fatalf("collect(nil) gave resources")
		}
	}
}

// TestPublishTouchesOnlyChangedResources follows one proxy subscribed to all
// four types through a weight step, a cluster change, an identical publish
// and removals. The cache version counters show how many updates each type's
// cache saw: a weight step is exactly one EDS update and nothing else.
func TestPublishTouchesOnlyChangedResources(t *testing.T) {
	h := startServer(t, Options{}, true)
	r := newRelease("ns", "svc", 8080)
	key := "ns/svc/8080"
	names := []string{r.name}
	gen1 := mustPublish(t, h.s, key, r.resources(t, 0))

	c := newSotwClient(t, dial(t, h.addr), "proxy-1")
	subscribe := func(typeURL string, names []string) *discoveryResponse {
		c.request(typeURL, names, "", "", "")
		resp := c.next()
		if resp.GetTypeUrl() != typeURL {
			t.Fatalf("got %s, want %s", resp.GetTypeUrl(), typeURL)
		}
		c.ack(resp, names)
		return resp
	}
	cds := subscribe(cdsURL, nil)
	eds := subscribe(edsURL, names)
	lds := subscribe(ldsURL, nil)
	subscribe(rdsURL, names)
	if got := sotwNames(t, cds); !slices.Equal(got, names) {
		t.Fatalf("CDS names %v, want %v", got, names)
	}
	if got := sotwNames(t, lds); !slices.Equal(got, []string{r.listener}) {
		t.Fatalf("LDS names %v, want %v", got, []string{r.listener})
	}

	// Weight step: one EDS update of one assignment.
	gen2 := mustPublish(t, h.s, key, r.resources(t, 10))
	step := c.next()
	if step.GetTypeUrl() != edsURL || len(step.GetResources()) != 1 {
		t.Fatalf("weight step sent %s with %d resources, want one EDS resource", step.GetTypeUrl(), len(step.GetResources()))
	}
	if w := canaryWeightOf(decodeCLA(t, step.GetResources()[0])); w != 10 {
		t.Fatalf("canary weight %d, want 10", w)
	}
	if a, b := versionCounter(t, h.s.prefix, eds.GetVersionInfo()), versionCounter(t, h.s.prefix, step.GetVersionInfo()); b != a+1 {
		t.Fatalf("EDS version went from %d to %d, want one update", a, b)
	}
	c.ack(step, names)

	// A cluster change: the next response is CDS, one version after the
	// first, so the weight step did not touch the CDS cache.
	res := r.resources(t, 10)
	res.Clusters[0].ConnectTimeout = durationpb.New(2 * time.Second)
	gen3 := mustPublish(t, h.s, key, res)
	cds2 := c.next()
	if cds2.GetTypeUrl() != cdsURL {
		t.Fatalf("cluster change sent %s, want CDS", cds2.GetTypeUrl())
	}
	if a, b := versionCounter(t, h.s.prefix, cds.GetVersionInfo()), versionCounter(t, h.s.prefix, cds2.GetVersionInfo()); b != a+1 {
		t.Fatalf("CDS version went from %d to %d, want one update", a, b)
	}
	c.ack(cds2, nil)

	// The same content again, in new messages: nothing is sent, but the
	// generation still grows.
	res = r.resources(t, 10)
	res.Clusters[0].ConnectTimeout = durationpb.New(2 * time.Second)
	gen4 := mustPublish(t, h.s, key, res)
	c.none(150 * time.Millisecond)
	if !(gen1 < gen2 && gen2 < gen3 && gen3 < gen4) {
		t.Fatalf("generations not increasing: %d %d %d %d", gen1, gen2, gen3, gen4)
	}
	if st := h.s.Applied(names, gen4); !st.Done() || st.Subscribed != 1 {
		t.Fatalf("Applied after identical publish: %+v", st)
	}

	// Dropping the listener from the release removes it: LDS is full
	// state, so the proxy gets an empty listener list.
	res = r.resources(t, 10)
	res.Clusters[0].ConnectTimeout = durationpb.New(2 * time.Second)
	res.Listeners = nil
	mustPublish(t, h.s, key, res)
	lds2 := c.next()
	if lds2.GetTypeUrl() != ldsURL || len(lds2.GetResources()) != 0 {
		t.Fatalf("listener removal sent %s with %d resources, want an empty LDS response", lds2.GetTypeUrl(), len(lds2.GetResources()))
	}
	c.ack(lds2, nil)
	c.none(100 * time.Millisecond)

	// Remove withdraws everything.
	if err := h.s.Remove(key); err != nil {
		t.Fatal(err)
	}
	cds3 := c.next()
	if cds3.GetTypeUrl() != cdsURL || len(cds3.GetResources()) != 0 {
		t.Fatalf("Remove sent %s with %d resources, want an empty CDS response", cds3.GetTypeUrl(), len(cds3.GetResources()))
	}
	for k, lc := range h.s.caches {
		if n := lc.NumResources(); n != 0 {
			t.Errorf("%s cache still holds %d resources", kind(k).typeURL(), n)
		}
	}
	if err := h.s.Remove(key); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestPublishNamesBelongToOneRelease(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := newRelease("ns", "svc", 80)
	mustPublish(t, s, "a", r.resources(t, 0))
	if _, err := s.Publish("b", r.resources(t, 0)); err == nil || !strings.Contains(err.Error(), "belongs to release a") {
		t.Fatalf("publishing another release's names: got %v", err)
	}
	if _, err := s.Publish("", r.resources(t, 0)); err == nil {
		t.Fatal("empty key accepted")
	}
	if err := s.Remove("a"); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, s, "b", r.resources(t, 0))
}

func TestHistoryKeepsDistinctRecentContents(t *testing.T) {
	var e entry
	for i, h := range []contentHash{1, 2, 1, 3, 4, 5} {
		e.record(version{hash: h, gen: Generation(i + 1)})
	}
	var got []contentHash
	for _, v := range e.history {
		got = append(got, v.hash)
	}
	if want := []contentHash{1, 3, 4, 5}; !slices.Equal(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	if v, _ := e.find(1); v.gen != 3 {
		t.Fatalf("content 1 maps to generation %d, want its latest, 3", v.gen)
	}
}
