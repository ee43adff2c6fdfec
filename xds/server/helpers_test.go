package server

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/serin-dev/serin/xds/translate"
)

var (
	cdsURL = kindCluster.typeURL()
	edsURL = kindEndpoint.typeURL()
	ldsURL = kindListener.typeURL()
	rdsURL = kindRoute.typeURL()
)

const waitTimeout = 5 * time.Second

// ---- resources ----

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func testCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		ConnectTimeout:       durationpb.New(time.Second),
		LrsServer: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Self{Self: &corev3.SelfConfigSource{}},
			ResourceApiVersion:    corev3.ApiVersion_V3,
		},
	}
}

// testCLA builds the weighted assignment of a release: localities stable and
// canary, a locality at weight 0 left out, as the translator does.
func testCLA(name string, canaryWeight uint32, stable, canary []netip.AddrPort) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	add := func(track string, w uint32, addrs []netip.AddrPort) {
		if w == 0 || len(addrs) == 0 {
			return
		}
		l := &endpointv3.LocalityLbEndpoints{
			Locality:            &corev3.Locality{Region: "serin", SubZone: track},
			LoadBalancingWeight: wrapperspb.UInt32(w),
		}
		for _, a := range addrs {
			l.LbEndpoints = append(l.LbEndpoints, &endpointv3.LbEndpoint{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address:       a.Addr().String(),
						PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(a.Port())},
					}}},
				}},
				HealthStatus: corev3.HealthStatus_HEALTHY,
			})
		}
		cla.Endpoints = append(cla.Endpoints, l)
	}
	add("stable", 100-canaryWeight, stable)
	add("canary", canaryWeight, canary)
	return cla
}

func testRoute(name, domain, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{domain},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
				}},
			}},
		}},
	}
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// testAPIListener is a proxyless gRPC listener: an API listener whose HTTP
// connection manager takes its routes from RDS over ADS.
func testAPIListener(t testing.TB, name, route string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: adsSource(), RouteConfigName: route}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})},
		}},
	}
	return &listenerv3.Listener{Name: name, ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(t, hcm)}}
}

// release is the hand-built resource set of one service port.
type release struct {
	name     string // serin/<ns>/<svc>/<port>
	listener string // <svc>.<ns>:<port>
	stable   []netip.AddrPort
	canary   []netip.AddrPort
}

func newRelease(ns, svc string, port int) release {
	return release{
		name:     fmt.Sprintf("serin/%s/%s/%d", ns, svc, port),
		listener: fmt.Sprintf("%s.%s:%d", svc, ns, port),
		stable:   []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:8080"), netip.MustParseAddrPort("10.0.0.2:8080")},
		canary:   []netip.AddrPort{netip.MustParseAddrPort("10.0.1.1:8080")},
	}
}

func (r release) resources(t testing.TB, canaryWeight uint32) *translate.Resources {
	return &translate.Resources{
		Clusters:  []*clusterv3.Cluster{testCluster(r.name)},
		Endpoints: []*endpointv3.ClusterLoadAssignment{testCLA(r.name, canaryWeight, r.stable, r.canary)},
		Routes:    []*routev3.RouteConfiguration{testRoute(r.name, "*", r.name)},
		Listeners: []*listenerv3.Listener{testAPIListener(t, r.listener, r.name)},
	}
}

func canaryWeightOf(cla *endpointv3.ClusterLoadAssignment) uint32 {
	for _, l := range cla.GetEndpoints() {
		if l.GetLocality().GetSubZone() == "canary" {
			return l.GetLoadBalancingWeight().GetValue()
		}
	}
	return 0
}

func mustPublish(t testing.TB, s *Server, key string, res *translate.Resources) Generation {
	t.Helper()
	gen, err := s.Publish(key, res)
	if err != nil {
		t.Fatalf("Publish(%s): %v", key, err)
	}
	return gen
}

// ---- server ----

type harness struct {
	s    *Server
	addr string
	reg  *prometheus.Registry

	mu    sync.Mutex
	nacks []NACK

	stop func() // stops the server and waits for Start to return
}

// startServer runs a Server on a loopback port until the test ends.
func startServer(t testing.TB, opts Options, ready bool) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry()}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Listener = lis
	if opts.TLS == nil {
		opts.Open = true // plaintext tests: no identities, no access control
	}
	opts.Registerer = h.reg
	if opts.Logger.GetSink() == nil {
		opts.Logger = testLogger(t)
	}
	hook := opts.OnNACK
	opts.OnNACK = func(n NACK) {
		h.mu.Lock()
		h.nacks = append(h.nacks, n)
		h.mu.Unlock()
		if hook != nil {
			hook(n)
		}
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.s, h.addr = s, lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Start: %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
	if ready {
		s.SetReady()
	}
	return h
}

func (h *harness) nackHookCalls() []NACK {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]NACK(nil), h.nacks...)
}

// metric reads one sample from the harness registry (0 if absent).
func (h *harness) metric(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			return sampleValue(f.GetType(), m)
		}
	}
	return 0
}

func sampleValue(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}

// eventually polls cond until it holds or the wait times out.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// ---- raw state-of-the-world ADS client ----

type sotwClient struct {
	t      testing.TB
	node   *corev3.Node
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	resps  chan *discoveryv3.DiscoveryResponse
	cancel context.CancelFunc
}

func newSotwClient(t testing.TB, conn *grpc.ClientConn, node string) *sotwClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &sotwClient{t: t, node: &corev3.Node{Id: node, Cluster: "test"}, stream: st,
		resps: make(chan *discoveryv3.DiscoveryResponse, 64), cancel: cancel}
	go func() {
		defer close(c.resps)
		for {
			r, err := st.Recv()
			if err != nil {
				return
			}
			c.resps <- r
		}
	}()
	t.Cleanup(cancel)
	return c
}

// request sends a DiscoveryRequest; a non-empty nack makes it a NACK.
func (c *sotwClient) request(typeURL string, names []string, version, nonce, nack string) {
	c.t.Helper()
	req := &discoveryv3.DiscoveryRequest{
		Node: c.node, TypeUrl: typeURL, ResourceNames: names, VersionInfo: version, ResponseNonce: nonce,
	}
	if nack != "" {
		req.ErrorDetail = &statuspb.Status{Code: 3, Message: nack}
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *sotwClient) ack(r *discoveryv3.DiscoveryResponse, names []string) {
	c.t.Helper()
	c.request(r.GetTypeUrl(), names, r.GetVersionInfo(), r.GetNonce(), "")
}

func (c *sotwClient) next() *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	select {
	case r, ok := <-c.resps:
		if !ok {
			c.t.Fatal("stream closed")
		}
		return r
	case <-time.After(waitTimeout):
		c.t.Fatal("timed out waiting for a response")
	}
	return nil
}

// none asserts that nothing arrives for d.
func (c *sotwClient) none(d time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.t.Fatalf("unexpected response: type %s version %s with %d resources", r.GetTypeUrl(), r.GetVersionInfo(), len(r.GetResources()))
	case <-time.After(d):
	}
}

// ---- raw delta ADS client ----

type deltaClient struct {
	t      testing.TB
	node   *corev3.Node
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	resps  chan *discoveryv3.DeltaDiscoveryResponse
}

func newDeltaClient(t testing.TB, conn *grpc.ClientConn, node string) *deltaClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &deltaClient{t: t, node: &corev3.Node{Id: node, Cluster: "test"}, stream: st,
		resps: make(chan *discoveryv3.DeltaDiscoveryResponse, 64)}
	go func() {
		defer close(c.resps)
		for {
			r, err := st.Recv()
			if err != nil {
				return
			}
			c.resps <- r
		}
	}()
	t.Cleanup(cancel)
	return c
}

func (c *deltaClient) send(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	req.Node = c.node
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *deltaClient) ack(r *discoveryv3.DeltaDiscoveryResponse) {
	c.t.Helper()
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()})
}

func (c *deltaClient) nack(r *discoveryv3.DeltaDiscoveryResponse, msg string) {
	c.t.Helper()
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce(),
		ErrorDetail: &statuspb.Status{Code: 3, Message: msg}})
}

func (c *deltaClient) next() *discoveryv3.DeltaDiscoveryResponse {
	c.t.Helper()
	select {
	case r, ok := <-c.resps:
		if !ok {
			c.t.Fatal("stream closed")
		}
		return r
	case <-time.After(waitTimeout):
		c.t.Fatal("timed out waiting for a delta response")
	}
	return nil
}

func (c *deltaClient) none(d time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.t.Fatalf("unexpected delta response: type %s with %d resources", r.GetTypeUrl(), len(r.GetResources()))
	case <-time.After(d):
	}
}

// ---- decoding ----

func decodeCLA(t testing.TB, a *anypb.Any) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	cla := &endpointv3.ClusterLoadAssignment{}
	if err := a.UnmarshalTo(cla); err != nil {
		t.Fatal(err)
	}
	return cla
}

func sotwNames(t testing.TB, r *discoveryv3.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		n, ok := resourceName(a.GetValue())
		if !ok {
			t.Fatalf("resource without name in %s response", r.GetTypeUrl())
		}
		out = append(out, n)
	}
	return out
}

// versionCounter splits a cache version "<prefix><n>" into its counter.
func versionCounter(t testing.TB, prefix, v string) int {
	t.Helper()
	if !strings.HasPrefix(v, prefix) {
		t.Fatalf("version %q lacks prefix %q", v, prefix)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(v, prefix))
	if err != nil {
		t.Fatalf("version %q: %v", v, err)
	}
	return n
}

// fakeClock is a settable clock for the LRS tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

type discoveryResponse = discoveryv3.DiscoveryResponse

func testLogger(t testing.TB) logr.Logger { return testr.NewWithInterface(t, testr.Options{}) }
