package translate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/serin-dev/serin/xds/model"
)

// These tests hand the translator's output to grpc-go's xDS client, an
// independent and strict xDS implementation, through go-control-plane's
// server: every HTTP/gRPC resource serin emits for proxyless clients must be
// ACKed, and traffic must follow the routes and weights.

// xdsServer is a go-control-plane ADS server on loopback that records
// ACKs and NACKs per node and resource type.
type xdsServer struct {
	addr  string
	cache cache.SnapshotCache

	mu    sync.Mutex
	sent  map[string]string // node/type → nonce of the last response
	acked map[string]string // node/type → version last ACKed
	nacks []string
}

func startXDSServer(t *testing.T) *xdsServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &xdsServer{
		// Not in "ads" mode: that mode holds answers until a request names
		// every resource of the snapshot, which a client never does.
		cache: cache.NewSnapshotCache(false, cache.IDHash{}, nil),
		sent:  map[string]string{},
		acked: map[string]string{},
	}
	nodes := sync.Map{} // stream → node id
	cb := server.CallbackFuncs{
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			if n := req.GetNode().GetId(); n != "" {
				nodes.Store(id, n)
			}
			v, _ := nodes.Load(id)
			key := fmt.Sprint(v) + "/" + req.GetTypeUrl()
			s.mu.Lock()
			defer s.mu.Unlock()
			if req.GetResponseNonce() == "" || req.GetResponseNonce() != s.sent[key] {
				return nil
			}
			if d := req.GetErrorDetail(); d != nil {
				s.nacks = append(s.nacks, key+": "+d.GetMessage())
				return nil
			}
			s.acked[key] = req.GetVersionInfo()
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			v, _ := nodes.Load(id)
			key := fmt.Sprint(v) + "/" + resp.GetTypeUrl()
			s.mu.Lock()
			s.sent[key] = resp.GetNonce()
			s.mu.Unlock()
		},
	}
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, server.NewServer(ctx, s.cache, cb))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(func() {
		cancel()
		gs.Stop()
	})
	return s
}

// publish replaces node's snapshot with res.
func (s *xdsServer) publish(t *testing.T, node, version string, res *Resources) {
	t.Helper()
	m := map[resource.Type][]types.Resource{}
	for _, c := range res.Clusters {
		m[resource.ClusterType] = append(m[resource.ClusterType], c)
	}
	for _, e := range res.Endpoints {
		m[resource.EndpointType] = append(m[resource.EndpointType], e)
	}
	for _, r := range res.Routes {
		m[resource.RouteType] = append(m[resource.RouteType], r)
	}
	for _, l := range res.Listeners {
		m[resource.ListenerType] = append(m[resource.ListenerType], l)
	}
	snap, err := cache.NewSnapshot(version, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
}

// waitACKs waits until node has ACKed version of every type, and fails on
// the first NACK.
func (s *xdsServer) waitACKs(t *testing.T, node, version string) {
	t.Helper()
	if err := s.awaitACKs(node, version); err != nil {
		t.Fatal(err)
	}
}

// errNACK marks a NACK from the client, as opposed to a timeout.
var errNACK = errors.New("grpc-go NACKed")

func (s *xdsServer) awaitACKs(node, version string) error {
	typesWanted := []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		nacks := append([]string(nil), s.nacks...)
		var missing []string
		for _, ty := range typesWanted {
			if s.acked[node+"/"+ty] != version {
				missing = append(missing, ty)
			}
		}
		s.mu.Unlock()
		for _, n := range nacks {
			if strings.HasPrefix(n, node+"/") {
				return fmt.Errorf("%w: %s", errNACK, n)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no ACK of version %s from grpc-go for %v", version, missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// xdsClient dials target through grpc-go's xDS resolver bootstrapped to s
// as node.
func (s *xdsServer) xdsClient(t *testing.T, node, target string) *grpc.ClientConn {
	t.Helper()
	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": %q}
	}`, s.addr, node)
	var rb resolver.Builder
	rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+target, grpc.WithResolvers(rb), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// grpcGoAccepts says whether a golden case is one grpc-go is meant to
// consume: HTTP or gRPC, ADS source. Istio mTLS clusters are for Istio's
// Envoys (proxyless gRPC in Istio takes certificates from its own provider
// plugins, not SDS), and the static-cluster and google_grpc sources are for
// Envoy: grpc-go accepts only ADS and self.
func grpcGoAccepts(c goldenCase) bool {
	random := c.Release.LoadBalancer != nil && c.Release.LoadBalancer.Policy == model.Random
	return c.Release.Protocol != model.TCP && !c.Release.IstioMutualTLS && !random &&
		(c.Options.Source.Kind == "" || c.Options.Source.Kind == SourceADS)
}

func TestGRPCGoACKsGoldenCases(t *testing.T) {
	s := startXDSServer(t)
	inputs, err := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, in := range inputs {
		c := readCase(t, in)
		if !grpcGoAccepts(c) {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			res, err := Translate(&c.Release, c.Options)
			if err != nil {
				t.Fatal(err)
			}
			s.publish(t, name, "1", res)
			cc := s.xdsClient(t, name, c.Release.ListenerNames()[0])
			cc.Connect()
			s.waitACKs(t, name, "1")
		})
	}
	if n < 10 {
		t.Fatalf("only %d golden cases are proxyless gRPC cases", n)
	}
}

// TestGRPCGoNACKsIstioMutualTLS pins down why the ACK test skips Istio mTLS
// cases: grpc-go takes certificates only from its certificate provider
// plugins and rejects a cluster whose TLS context points at Istio's SDS.
// It also shows that the harness does see a NACK.
func TestGRPCGoNACKsIstioMutualTLS(t *testing.T) {
	s := startXDSServer(t)
	c := readCase(t, filepath.Join("testdata", "in", "istio-mtls.yaml"))
	res, err := Translate(&c.Release, c.Options)
	if err != nil {
		t.Fatal(err)
	}
	s.publish(t, "mtls", "1", res)
	s.xdsClient(t, "mtls", c.Release.ListenerNames()[0]).Connect()
	err = s.awaitACKs("mtls", "1")
	if !errors.Is(err, errNACK) || !strings.Contains(err.Error(), resource.ClusterType) {
		t.Fatalf("want a CDS NACK, got %v", err)
	}
}

// backend is a gRPC server that answers any unary call with an empty
// message and a "track" response header naming itself.
func backend(t *testing.T, track string) uint32 {
	t.Helper()
	gs := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		var in emptypb.Empty
		if err := stream.RecvMsg(&in); err != nil {
			return err
		}
		if err := stream.SetHeader(metadata.Pairs("track", track)); err != nil {
			return err
		}
		return stream.SendMsg(&emptypb.Empty{})
	}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return uint32(lis.Addr().(*net.TCPAddr).Port)
}

// whoServes calls the service n times with the given request metadata and
// counts the answers per track.
func whoServes(t *testing.T, cc *grpc.ClientConn, n int, md ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
		var hdr metadata.MD
		err := cc.Invoke(ctx, "/serin.test.Echo/Who", &emptypb.Empty{}, &emptypb.Empty{}, grpc.Header(&hdr), grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("RPC: %v", err)
		}
		counts[strings.Join(hdr.Get("track"), ",")]++
	}
	return counts
}

// eventually retries a traffic check for a few seconds: grpc-go ACKs an
// update before its balancers have all switched over.
func eventually(t *testing.T, what string, check func() (bool, map[string]int)) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, got := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: got %v", what, got)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGRPCGoRoutesTraffic(t *testing.T) {
	s := startXDSServer(t)
	stablePort, canaryPort := backend(t, "stable"), backend(t, "canary")
	r := &model.Release{
		Namespace: "test", Service: "echo", Port: 8080, Protocol: model.GRPC,
		Stable:          model.TrackEndpoints{Revision: "aaa", Endpoints: []model.Endpoint{{IP: "127.0.0.1", Port: stablePort, Ready: true}}},
		Canary:          model.TrackEndpoints{Revision: "bbb", Endpoints: []model.Endpoint{{IP: "127.0.0.1", Port: canaryPort, Ready: true}}},
		Match:           []model.RequestMatch{{Headers: []model.StringMatch{{Name: "x-canary", Exact: "insider"}}}},
		SessionAffinity: &model.SessionAffinity{CookieName: "serin-session"},
	}
	const node = "routing"
	publish := func(version string, weight uint32) {
		t.Helper()
		r.CanaryWeight = weight
		res, err := Translate(r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.publish(t, node, version, res)
	}
	publish("1", 0)
	conn := s.xdsClient(t, node, "echo.test:8080")
	all := func(track string, n int, md ...string) func() (bool, map[string]int) {
		return func() (bool, map[string]int) {
			got := whoServes(t, conn, n, md...)
			return got[track] == n, got
		}
	}

	eventually(t, "weight 0: every call on stable", all("stable", 20))
	eventually(t, "A/B header: every call on canary", all("canary", 10, "x-canary", "insider"))

	publish("2", 50)
	s.waitACKs(t, node, "2")
	eventually(t, "weight 50, stable cookie: every call on stable", all("stable", 10, "cookie", "a=1; serin-session=aaa"))
	eventually(t, "weight 50, canary cookie: every call on canary", all("canary", 10, "cookie", "serin-session=bbb"))
	eventually(t, "weight 50: both tracks well used", func() (bool, map[string]int) {
		got := whoServes(t, conn, 200)
		return got["stable"] >= 50 && got["canary"] >= 50, got
	})

	publish("3", 100)
	s.waitACKs(t, node, "3")
	eventually(t, "weight 100: a stable cookie no longer pins, every call on canary", all("canary", 20, "cookie", "serin-session=aaa"))
}

// TestGRPCGoNACKsRandom pins down why RANDOM is an Envoy-only policy (the
// builder keeps round robin for gRPC releases): grpc-go rejects the
// cluster.
func TestGRPCGoNACKsRandom(t *testing.T) {
	s := startXDSServer(t)
	c := readCase(t, filepath.Join("testdata", "in", "lb-random.yaml"))
	res, err := Translate(&c.Release, c.Options)
	if err != nil {
		t.Fatal(err)
	}
	s.publish(t, "random", "1", res)
	s.xdsClient(t, "random", c.Release.ListenerNames()[0]).Connect()
	err = s.awaitACKs("random", "1")
	if !errors.Is(err, errNACK) || !strings.Contains(err.Error(), "RANDOM") {
		t.Fatalf("want a CDS NACK for RANDOM, got %v", err)
	}
}

// TestGRPCGoConsistentHashAndMatchConditions runs a real grpc-go client
// against a ring-hash release with A/B matches that use withoutHeaders
// and ignoreUriCase.
func TestGRPCGoConsistentHashAndMatchConditions(t *testing.T) {
	s := startXDSServer(t)
	stablePort, canaryPort := backend(t, "stable"), backend(t, "canary")
	r := &model.Release{
		Namespace: "test", Service: "echo", Port: 8080, Protocol: model.GRPC,
		Stable: model.TrackEndpoints{Revision: "aaa", Endpoints: []model.Endpoint{{IP: "127.0.0.1", Port: stablePort, Ready: true}}},
		Canary: model.TrackEndpoints{Revision: "bbb", Endpoints: []model.Endpoint{{IP: "127.0.0.1", Port: canaryPort, Ready: true}}},
		Match: []model.RequestMatch{
			{Headers: []model.StringMatch{{Name: "x-canary", Exact: "insider"}}, WithoutHeaders: []model.StringMatch{{Name: "x-opt-out", Present: true}}},
			{URI: &model.StringMatch{Prefix: "/SERIN.TEST.ECHO/"}, IgnoreURICase: true, Headers: []model.StringMatch{{Name: "x-case", Present: true}}},
		},
		LoadBalancer: &model.LoadBalancer{Policy: model.RingHash, Hash: &model.HashPolicy{Header: "x-user-id"}},
	}
	const node = "hash"
	publish := func(version string, weight uint32) {
		t.Helper()
		r.CanaryWeight = weight
		res, err := Translate(r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.publish(t, node, version, res)
		s.waitACKs(t, node, version)
	}
	conn := s.xdsClient(t, node, "echo.test:8080")
	conn.Connect()
	publish("1", 0)
	all := func(track string, n int, md ...string) func() (bool, map[string]int) {
		return func() (bool, map[string]int) {
			got := whoServes(t, conn, n, md...)
			return got[track] == n, got
		}
	}
	eventually(t, "weight 0: every call on stable", all("stable", 10))
	eventually(t, "A/B header: on canary", all("canary", 10, "x-canary", "insider"))
	eventually(t, "A/B header with the withoutHeaders header: on stable", all("stable", 10, "x-canary", "insider", "x-opt-out", "1"))
	eventually(t, "A/B path in another case: on canary", all("canary", 10, "x-case", "1"))

	publish("2", 50)
	eventually(t, "weight 50, ring hash on x-user-id: each user on one track, both tracks used", func() (bool, map[string]int) {
		users := map[string]int{}
		for i := range 40 {
			got := whoServes(t, conn, 5, "x-user-id", fmt.Sprintf("user-%d", i))
			if len(got) != 1 {
				return false, got
			}
			for track := range got {
				users[track]++
			}
		}
		return users["stable"] > 0 && users["canary"] > 0, users
	})
}

// TestGRPCGoServiceMatch runs a real grpc-go client against a release
// whose service match admits only calls with x-tenant: blue; an A/B match
// sends the insiders among them to the canary.
func TestGRPCGoServiceMatch(t *testing.T) {
	s := startXDSServer(t)
	stablePort, canaryPort := backend(t, "stable"), backend(t, "canary")
	r := &model.Release{
		Namespace: "test", Service: "echo", Port: 8080, Protocol: model.GRPC,
		Stable:       model.TrackEndpoints{Revision: "aaa", Endpoints: []model.Endpoint{{IP: "127.0.0.1", Port: stablePort, Ready: true}}},
		Canary:       model.TrackEndpoints{Revision: "bbb", Endpoints: []model.Endpoint{{IP: "127.0.0.1", Port: canaryPort, Ready: true}}},
		ServiceMatch: []model.RequestMatch{{Headers: []model.StringMatch{{Name: "x-tenant", Exact: "blue"}}}},
		Match:        []model.RequestMatch{{Headers: []model.StringMatch{{Name: "x-canary", Exact: "insider"}}}},
	}
	res, err := Translate(r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.publish(t, "svcmatch", "1", res)
	conn := s.xdsClient(t, "svcmatch", "echo.test:8080")
	conn.Connect()
	s.waitACKs(t, "svcmatch", "1")
	all := func(track string, n int, md ...string) func() (bool, map[string]int) {
		return func() (bool, map[string]int) {
			got := whoServes(t, conn, n, md...)
			return got[track] == n, got
		}
	}
	eventually(t, "tenant blue: on stable", all("stable", 10, "x-tenant", "blue"))
	eventually(t, "tenant blue insider: on canary", all("canary", 10, "x-tenant", "blue", "x-canary", "insider"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-canary", "insider")
	err = conn.Invoke(ctx, "/serin.test.Echo/Who", &emptypb.Empty{}, &emptypb.Empty{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("a call outside the service match: got %v, want UNAVAILABLE (no route)", err)
	}
}
