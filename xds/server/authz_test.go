package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"

	"github.com/serin-dev/serin/xds/model"
)

// mtls is a server with client certificates verified when given, so that
// clients without one reach the server's own access control, and a CA to
// issue client certificates from.
type mtls struct {
	*harness
	pool   *x509.CertPool
	client func(spiffe string) *grpc.ClientConn
}

func startMTLS(t *testing.T, opts Options) *mtls {
	t.Helper()
	ca, caKey := newCA(t)
	serverCert := issue(t, ca, caKey, func(c *x509.Certificate) {
		c.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	opts.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool,
		ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS13}
	m := &mtls{harness: startServer(t, opts, true), pool: pool}
	m.client = func(spiffe string) *grpc.ClientConn {
		t.Helper()
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
		if spiffe != "" {
			cert := issue(t, ca, caKey, func(c *x509.Certificate) {
				u, err := url.Parse(spiffe)
				if err != nil {
					t.Fatal(err)
				}
				c.URIs = []*url.URL{u}
				c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			})
			cfg.Certificates = []tls.Certificate{cert}
		}
		conn, err := grpc.NewClient(m.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	return m
}

const (
	spiffeA = "spiffe://cluster.local/ns/a/sa/client"
	spiffeB = "spiffe://cluster.local/ns/b/sa/client"
)

// publishTenants publishes a release of namespace a exported to "." only,
// and a release of namespace p exported everywhere.
func publishTenants(t *testing.T, s *Server) (private, public release, gen Generation) {
	t.Helper()
	private, public = newRelease("a", "svc", 8080), newRelease("p", "pub", 80)
	res := private.resources(t, 10)
	res.Visibility = model.Visibility{Namespace: "a", ExportTo: []string{"."}}
	mustPublish(t, s, "a/svc/8080", res)
	res = public.resources(t, 0)
	res.Visibility = model.Visibility{Namespace: "p"}
	gen = mustPublish(t, s, "p/pub/80", res)
	return private, public, gen
}

func namesOf(t *testing.T, r *discoveryv3.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		name, ok := resourceName(a.GetValue())
		if !ok {
			t.Fatalf("resource without a name in %s", r.GetTypeUrl())
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// TestUnauthenticatedClientGetsNothing: without a client certificate, a
// discovery stream and a load reporting stream end with Unauthenticated.
func TestUnauthenticatedClientGetsNothing(t *testing.T) {
	m := startMTLS(t, Options{})
	private, _, _ := publishTenants(t, m.s)
	conn := m.client("")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = ads.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "anon"}, TypeUrl: edsURL, ResourceNames: []string{private.name}})
	if _, err := ads.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("ADS without a certificate: %v, want Unauthenticated", err)
	}
	lrs, err := lrsv3.NewLoadReportingServiceClient(conn).StreamLoadStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = lrs.Send(&lrsv3.LoadStatsRequest{Node: &corev3.Node{Id: "anon"}, ClusterStats: []*endpointv3.ClusterStats{
		{ClusterName: private.name, UpstreamLocalityStats: []*endpointv3.UpstreamLocalityStats{localityStats("canary", 0, 100, 100)}}}})
	if _, err := lrs.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("LRS without a certificate: %v, want Unauthenticated", err)
	}
	if got := m.s.LoadReports(private.name, time.Unix(0, 0), time.Now().Add(time.Hour)); len(got) != 0 {
		t.Errorf("load filed from an unauthenticated client: %v", got)
	}
	if n := m.metric(t, "serin_xds_unauthenticated_streams_total", nil); n != 2 {
		t.Errorf("serin_xds_unauthenticated_streams_total = %v, want 2", n)
	}
}

// TestProxiesGetOnlyWhatTheirNamespaceMaySee: a client of namespace b asks
// for everything and for a's private release by name; it is sent only the
// public release, does not count for a's release, and its NACK of what it
// was sent moves nothing of a's. A client of namespace a gets both.
func TestProxiesGetOnlyWhatTheirNamespaceMaySee(t *testing.T) {
	m := startMTLS(t, Options{})
	private, public, _ := publishTenants(t, m.s)

	b := newSotwClient(t, m.client(spiffeB), "b-proxy")
	b.request(cdsURL, nil, "", "", "") // wildcard
	if r := b.next(); !slices.Equal(namesOf(t, r), []string{public.name}) {
		t.Fatalf("wildcard CDS of b: %v, want only %s", namesOf(t, r), public.name)
	}
	b.request(edsURL, []string{private.name}, "", "", "")
	eds := b.next()
	if len(eds.GetResources()) != 0 {
		t.Fatalf("b was sent a's endpoints: %v", namesOf(t, eds))
	}
	b.request(edsURL, []string{private.name}, eds.GetVersionInfo(), eds.GetNonce(), "attack: rejecting a's endpoints")
	b.request(ldsURL, []string{private.listener}, "", "", "")
	if r := b.next(); len(r.GetResources()) != 0 {
		t.Fatalf("b was sent a's listener: %v", namesOf(t, r))
	}
	if st := m.s.Applied([]string{private.name}, 1); st.Subscribed != 0 || len(st.Rejected) != 0 {
		t.Errorf("a's release waits for or was rejected by b: %+v", st)
	}

	a := newSotwClient(t, m.client(spiffeA), "a-proxy")
	a.request(cdsURL, nil, "", "", "")
	cds := a.next()
	if !slices.Equal(namesOf(t, cds), []string{private.name, public.name}) {
		t.Fatalf("wildcard CDS of a: %v", namesOf(t, cds))
	}
	a.ack(cds, nil)
	a.request(edsURL, []string{private.name}, "", "", "")
	r := a.next()
	if !slices.Equal(namesOf(t, r), []string{private.name}) {
		t.Fatalf("EDS of a: %v", namesOf(t, r))
	}
	a.ack(r, []string{private.name})
	eventually(t, "a applied its release", func() bool {
		st := m.s.Applied([]string{private.name}, 1)
		return st.Subscribed == 1 && st.Done()
	})
	if n := m.nackHookCalls(); len(n) != 0 {
		t.Errorf("NACKs counted: %+v", n)
	}
	if n := m.metric(t, "serin_xds_nack_total", map[string]string{"type_url": edsURL}); n != 0 {
		t.Errorf("serin_xds_nack_total = %v, want 0", n)
	}
}

// TestDeltaResponsesAreFiltered: the delta protocol withholds the same.
func TestDeltaResponsesAreFiltered(t *testing.T) {
	m := startMTLS(t, Options{})
	private, public, _ := publishTenants(t, m.s)
	b := newDeltaClient(t, m.client(spiffeB), "b-proxy")
	b.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: edsURL, ResourceNamesSubscribe: []string{private.name, public.name}})
	r := b.next()
	var got []string
	for _, x := range r.GetResources() {
		got = append(got, x.GetName())
	}
	if !slices.Equal(got, []string{public.name}) {
		t.Fatalf("delta EDS of b: %v, want only %s", got, public.name)
	}
}

// TestLoadReportsOnlyFromThoseWhoMaySee: load reports count only for
// clusters serin serves that the reporter may see, on a bounded number of
// clusters per stream.
func TestLoadReportsOnlyFromThoseWhoMaySee(t *testing.T) {
	m := startMTLS(t, Options{MaxLoadClusters: 1})
	private, public, _ := publishTenants(t, m.s)
	report := func(conn *grpc.ClientConn, names ...string) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		st, err := lrsv3.NewLoadReportingServiceClient(conn).StreamLoadStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		req := &lrsv3.LoadStatsRequest{Node: &corev3.Node{Id: "n"}}
		for _, n := range names {
			req.ClusterStats = append(req.ClusterStats, &endpointv3.ClusterStats{ClusterName: n,
				UpstreamLocalityStats: []*endpointv3.UpstreamLocalityStats{localityStats("canary", 0, 100, 100)}})
		}
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	dropped := func(reason string) float64 {
		return m.metric(t, "serin_xds_load_reports_dropped_total", map[string]string{"reason": reason})
	}
	report(m.client(spiffeB), private.name, "junk-1", "junk-2")
	eventually(t, "b's reports dropped", func() bool { return dropped("denied") == 1 && dropped("unknown") == 2 })
	report(m.client(spiffeA), private.name, public.name)
	eventually(t, "a's report filed", func() bool { return dropped("limit") == 1 })
	all := func(name string) uint64 {
		return m.s.LoadReports(name, time.Unix(0, 0), time.Now().Add(time.Hour))["canary"].Errors
	}
	if got := all(private.name); got != 100 {
		t.Errorf("errors filed for a's cluster: %d, want 100 (a's report only)", got)
	}
	if got := all(public.name); got != 0 {
		t.Errorf("errors filed past the per-stream limit: %d", got)
	}
	if got := all("junk-1"); got != 0 {
		t.Errorf("junk cluster filed: %d", got)
	}
}

func TestParseSPIFFE(t *testing.T) {
	for id, want := range map[string][2]string{
		"spiffe://cluster.local/ns/shop/sa/web": {"shop", "web"},
		"spiffe://td/ns/a/sa/b":                 {"a", "b"},
		"spiffe://td/ns/a/sa/":                  {},
		"spiffe://td/ns//sa/b":                  {},
		"spiffe://td/ns/a/sa/b/c":               {},
		"https://td/ns/a/sa/b":                  {},
		"spiffe:///ns/a/sa/b":                   {},
		"localhost":                             {},
	} {
		ns, sa, ok := ParseSPIFFE(id)
		if got := [2]string{ns, sa}; got != want || ok != (want != [2]string{}) {
			t.Errorf("ParseSPIFFE(%q) = %q, %q, %v", id, ns, sa, ok)
		}
	}
}
