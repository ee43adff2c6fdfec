package istio

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
	clientnetworking "istio.io/client-go/pkg/apis/networking/v1alpha3"

	"github.com/serin-dev/serin/xds/model"
	"github.com/serin-dev/serin/xds/translate"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// render returns the release's sidecar EnvoyFilter with the patches of
// its gateway EnvoyFilter, if any, appended.
func render(t *testing.T, c testCase) *clientnetworking.EnvoyFilter {
	t.Helper()
	efs, err := RenderEnvoyFilters(&c.Release, c.Options)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(efs, func(a, b *clientnetworking.EnvoyFilter) int { return strings.Compare(a.Name, b.Name) })
	if len(efs) == 0 || len(efs) > 2 {
		t.Fatalf("want a sidecar EnvoyFilter and at most one for gateways, got %d", len(efs))
	}
	out := efs[0].DeepCopy()
	for _, ef := range efs[1:] {
		out.Spec.ConfigPatches = append(out.Spec.ConfigPatches, ef.Spec.ConfigPatches...)
	}
	return out
}

// value decodes a patch value into the Envoy type istiod builds for its
// applyTo, rejecting unknown fields as Istio's strict validation does.
func value(t *testing.T, p *networking.EnvoyFilter_EnvoyConfigObjectPatch) proto.Message {
	t.Helper()
	var m proto.Message
	switch p.GetApplyTo() {
	case networking.EnvoyFilter_CLUSTER:
		m = &clusterv3.Cluster{}
	case networking.EnvoyFilter_HTTP_ROUTE:
		m = &routev3.Route{}
	case networking.EnvoyFilter_NETWORK_FILTER:
		m = &listenerv3.Filter{}
	default:
		t.Fatalf("unexpected applyTo %v", p.GetApplyTo())
	}
	b, err := protojson.Marshal(p.GetPatch().GetValue())
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		t.Fatalf("%v value is not a %T: %v", p.GetApplyTo(), m, err)
	}
	return m
}

// istioRoute is a route as istiod writes it for a service without a
// VirtualService (route.buildDefaultHTTPRoute plus its default timeout and
// retry policy).
func istioRoute(r *model.Release) *routev3.Route {
	return &routev3.Route{
		Name:  "default",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Decorator: &routev3.Decorator{
			Operation: SidecarVirtualHost(r) + "/*",
		},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|9898||" + strings.TrimSuffix(SidecarVirtualHost(r), ":9898")},
			Timeout:          durationpb.New(0),
			RetryPolicy: &routev3.RetryPolicy{
				RetryOn:              "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
				NumRetries:           wrapperspb.UInt32(2),
				RetriableStatusCodes: []uint32{503},
			},
			MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{
				MaxStreamDuration:    durationpb.New(0),
				GrpcTimeoutHeaderMax: durationpb.New(0),
			},
		}},
	}
}

// TestPatchValues is check (d): every patch value is the right Envoy type,
// complete values pass serin's recursive validation and equal what
// translate produced, and MERGE fragments, merged onto what istiod
// generates, give a valid route or filter that sends traffic to serin.
func TestPatchValues(t *testing.T) {
	for name, c := range cases(t) {
		t.Run(name, func(t *testing.T) {
			ef := render(t, c)
			res, err := translate.Translate(&c.Release, c.Options.Translate)
			if err != nil {
				t.Fatal(err)
			}
			var clusters []string
			var inserted []string
			merges := 0
			for _, p := range ef.Spec.GetConfigPatches() {
				m := value(t, p)
				switch op := p.GetPatch().GetOperation(); {
				case p.GetApplyTo() == networking.EnvoyFilter_CLUSTER && op == networking.EnvoyFilter_Patch_ADD:
					cl := m.(*clusterv3.Cluster)
					if err := translate.ValidateMessage(cl); err != nil {
						t.Errorf("cluster %s: %v", cl.GetName(), err)
					}
					i := slices.IndexFunc(res.Clusters, func(x *clusterv3.Cluster) bool { return x.GetName() == cl.GetName() })
					if i < 0 || !proto.Equal(res.Clusters[i], cl) {
						t.Errorf("cluster %s does not round-trip to translate's", cl.GetName())
					}
					if p.GetMatch().GetContext() == networking.EnvoyFilter_SIDECAR_OUTBOUND {
						clusters = append(clusters, cl.GetName())
					}
				case p.GetApplyTo() == networking.EnvoyFilter_HTTP_ROUTE && op == networking.EnvoyFilter_Patch_INSERT_FIRST:
					rt := m.(*routev3.Route)
					if err := translate.ValidateMessage(rt); err != nil {
						t.Errorf("route %s: %v", rt.GetName(), err)
					}
					if p.GetMatch().GetContext() == networking.EnvoyFilter_SIDECAR_OUTBOUND {
						inserted = append(inserted, rt.GetName())
					}
				case p.GetApplyTo() == networking.EnvoyFilter_HTTP_ROUTE && op == networking.EnvoyFilter_Patch_MERGE:
					merges++
					merged := istioRoute(&c.Release)
					proto.Merge(merged, m)
					if err := translate.ValidateMessage(merged); err != nil {
						t.Errorf("merged default route: %v", err)
					}
					if got := merged.GetRoute().GetCluster(); got != c.Release.ClusterName() {
						t.Errorf("merged route goes to %q, want the weighted cluster", got)
					}
					if merged.GetName() != "default" || merged.GetMatch().GetPrefix() != "/" {
						t.Errorf("the merge must keep Istio's name and match, got %q %v", merged.GetName(), merged.GetMatch())
					}
					if c.Release.Mirror != nil && merged.GetRoute().GetRequestMirrorPolicies()[0].GetCluster() != c.Release.TrackClusterName(v1alpha1.TrackCanary) {
						t.Errorf("mirror policy lost in the merge")
					}
				case p.GetApplyTo() == networking.EnvoyFilter_NETWORK_FILTER && op == networking.EnvoyFilter_Patch_MERGE:
					merges++
					frag := m.(*listenerv3.Filter)
					// istiod merges the typed configs, not the Anys
					// (util.MergeAnyWithAny): do the same.
					base := &tcpproxyv3.TcpProxy{
						StatPrefix:       "outbound|5432||tcpdb.test.svc.cluster.local",
						ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "outbound|5432||tcpdb.test.svc.cluster.local"},
					}
					patch := &tcpproxyv3.TcpProxy{}
					if err := frag.GetTypedConfig().UnmarshalTo(patch); err != nil {
						t.Fatal(err)
					}
					proto.Merge(base, patch)
					merged := &listenerv3.Filter{Name: frag.GetName(), ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustPack(t, base)}}
					if err := translate.ValidateMessage(merged); err != nil {
						t.Errorf("merged tcp_proxy: %v", err)
					}
					if base.GetCluster() != c.Release.ClusterName() || base.GetStatPrefix() != "outbound|5432||tcpdb.test.svc.cluster.local" {
						t.Errorf("merged tcp_proxy: cluster %q stat prefix %q", base.GetCluster(), base.GetStatPrefix())
					}
				default:
					t.Errorf("unexpected patch %v %v", p.GetApplyTo(), op)
				}
			}
			if want := []string{c.Release.ClusterName(), c.Release.TrackClusterName(v1alpha1.TrackCanary), c.Release.TrackClusterName(v1alpha1.TrackStable)}; !slices.Equal(clusters, want) {
				t.Errorf("sidecar clusters %v, want %v", clusters, want)
			}
			var want []string
			for _, rt := range res.Routes {
				for _, r := range rt.GetVirtualHosts()[0].GetRoutes() {
					if r.GetName() != translate.DefaultRouteName {
						want = append(want, r.GetName())
					}
				}
			}
			// Inserted first one by one: the patches run last to first.
			slices.Reverse(inserted)
			if !slices.Equal(inserted, want) {
				t.Errorf("INSERT_FIRST patches leave routes %v, want %v", inserted, want)
			}
			if merges == 0 {
				t.Error("no MERGE patch: Istio's own route or tcp_proxy would still bypass serin")
			}
		})
	}
}

func mustPack(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRenderEnvoyFiltersShape(t *testing.T) {
	all := cases(t)
	t.Run("names and labels are deterministic", func(t *testing.T) {
		a, b := render(t, all["gateway"]), render(t, all["gateway"])
		if a.Name != b.Name || a.Labels[LabelRelease] != b.Labels[LabelRelease] {
			t.Fatal("two renders differ")
		}
		if a.Name != "serin-test-podinfo-9898-"+a.Labels[LabelRelease][:8] || a.Namespace != "test" {
			t.Errorf("name %s/%s", a.Namespace, a.Name)
		}
		if a.Labels[LabelManagedBy] != ManagedBy || a.Annotations[AnnotationRelease] != "test/podinfo/9898" {
			t.Errorf("labels %v annotations %v", a.Labels, a.Annotations)
		}
		other := all["gateway"].Release
		other.Namespace, other.Service = "test-podinfo", "x"
		if ReleaseHash(&other) == a.Labels[LabelRelease] {
			t.Error("different releases share a hash")
		}
	})
	t.Run("bootstrap mode limits every patch to marked proxies", func(t *testing.T) {
		for _, p := range render(t, all["gateway"]).Spec.GetConfigPatches() {
			if p.GetMatch().GetProxy().GetMetadata()[ProxyMetadataKey] != BootstrapProxyMetadata {
				t.Fatalf("patch %v without the proxy metadata match", p.GetApplyTo())
			}
		}
	})
	t.Run("google_grpc mode reaches every proxy", func(t *testing.T) {
		for _, p := range render(t, all["grpc-google-grpc"]).Spec.GetConfigPatches() {
			if p.GetMatch().GetProxy() != nil {
				t.Fatalf("patch %v has a proxy match", p.GetApplyTo())
			}
		}
	})
	t.Run("gateways get their own patches, by host", func(t *testing.T) {
		var gw []*networking.EnvoyFilter_EnvoyConfigObjectPatch
		for _, p := range render(t, all["gateway"]).Spec.GetConfigPatches() {
			if p.GetMatch().GetContext() == networking.EnvoyFilter_GATEWAY {
				gw = append(gw, p)
			}
		}
		// 3 clusters, 3 inserted routes (A/B, 2 sticky), 1 merge.
		if len(gw) != 7 {
			t.Fatalf("want 7 gateway patches, got %d", len(gw))
		}
		for _, p := range gw[3:] {
			if d := p.GetMatch().GetRouteConfiguration().GetVhost().GetDomainName(); d != "podinfo.example.com" {
				t.Errorf("gateway route patch matches domain %q", d)
			}
		}
		if render(t, all["http-bootstrap-override"]).Spec.GetConfigPatches()[0].GetMatch().GetContext() != networking.EnvoyFilter_SIDECAR_OUTBOUND {
			t.Error("want sidecar patches")
		}
	})
	t.Run("sidecar patches live in the release's namespace, gateway patches in the root namespace", func(t *testing.T) {
		c := all["gateway"]
		for _, meshWide := range []bool{false, true} {
			c.Options.MeshWideSidecars = meshWide
			efs, err := RenderEnvoyFilters(&c.Release, c.Options)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				EnvoyFilterName(&c.Release) + "/" + networking.EnvoyFilter_SIDECAR_OUTBOUND.String(): "test",
				GatewayEnvoyFilterName(&c.Release) + "/" + networking.EnvoyFilter_GATEWAY.String():   DefaultNamespace,
			}
			if meshWide {
				want[EnvoyFilterName(&c.Release)+"/"+networking.EnvoyFilter_SIDECAR_OUTBOUND.String()] = DefaultNamespace
			}
			got := map[string]string{}
			for _, ef := range efs {
				for _, p := range ef.Spec.GetConfigPatches() {
					got[ef.Name+"/"+p.GetMatch().GetContext().String()] = ef.Namespace
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("meshWideSidecars=%t: filter/context → namespace %v, want %v", meshWide, got, want)
			}
		}
	})
	t.Run("TCP patches the service's own listeners only", func(t *testing.T) {
		c := all["tcp"]
		c.Release.ClusterIPs = []string{"10.96.0.30", "fd00::30"}
		var names []string
		for _, p := range render(t, c).Spec.GetConfigPatches() {
			if l := p.GetMatch().GetListener(); l != nil {
				names = append(names, l.GetName())
			}
		}
		if !slices.Equal(names, []string{"10.96.0.30_5432", "fd00::30_5432"}) {
			t.Errorf("listener matches %v", names)
		}
	})
}

func TestRenderEnvoyFiltersRejects(t *testing.T) {
	all := cases(t)
	c := all["weights-only"]
	c.Options.Translate.Source.Kind = translate.SourceADS
	if _, err := RenderEnvoyFilters(&c.Release, c.Options); err == nil || !strings.Contains(err.Error(), "StaticCluster or GoogleGRPC") {
		t.Errorf("ADS source: got %v", err)
	}
	c = all["tcp"]
	c.Release.ClusterIPs = nil
	if _, err := RenderEnvoyFilters(&c.Release, c.Options); err == nil || !strings.Contains(err.Error(), "clusterIPs") {
		t.Errorf("TCP without cluster IPs: got %v", err)
	}
	c = all["weights-only"]
	c.Release.CanaryWeight = 120
	if _, err := RenderEnvoyFilters(&c.Release, c.Options); err == nil {
		t.Error("an invalid release rendered")
	}
}

func TestRenderBootstrapOverride(t *testing.T) {
	opts := cases(t)["http-bootstrap-override"].Options
	cm, err := RenderBootstrapOverride("shop", opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := RenderBootstrapOverride("shop", opts)
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data[bootstrapDataKey] != again.Data[bootstrapDataKey] {
		t.Fatal("two renders differ")
	}
	if cm.Name != DefaultBootstrapConfigMap || cm.Namespace != "shop" || BootstrapAnnotations(opts)[BootstrapOverrideAn] != cm.Name {
		t.Errorf("ConfigMap %s/%s", cm.Namespace, cm.Name)
	}
	raw := cm.Data[bootstrapDataKey]
	if !json.Valid([]byte(raw)) {
		t.Fatal("not JSON")
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal([]byte(raw), b); err != nil {
		t.Fatalf("not an Envoy bootstrap: %v", err)
	}
	if err := translate.ValidateMessage(b); err != nil {
		t.Fatal(err)
	}
	if got := b.GetNode().GetMetadata().GetFields()[ProxyMetadataKey].GetStringValue(); got != BootstrapProxyMetadata {
		t.Errorf("node metadata %s = %q: the EnvoyFilters' proxy match would miss this proxy", ProxyMetadataKey, got)
	}
	cl := b.GetStaticResources().GetClusters()
	if len(cl) != 1 || cl[0].GetName() != translate.DefaultXDSCluster || cl[0].GetType() != clusterv3.Cluster_STRICT_DNS {
		t.Fatalf("clusters %v", cl)
	}
	sa := cl[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "serin-xds.serin-system.svc.cluster.local" || sa.GetPortValue() != 18000 {
		t.Errorf("serin-xds points at %s:%d", sa.GetAddress(), sa.GetPortValue())
	}
	if cl[0].GetTransportSocket().GetName() != "envoy.transport_sockets.tls" {
		t.Fatal("serin-xds must use mutual TLS")
	}
	up := &tlsv3.UpstreamTlsContext{}
	if err := cl[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(up); err != nil {
		t.Fatal(err)
	}
	vc := up.GetCommonTlsContext().GetValidationContext()
	if vc.GetTrustedCa().GetInlineString() != opts.XDSCABundle || len(vc.GetMatchTypedSubjectAltNames()) != 1 ||
		vc.GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact() != "serin-xds.serin-system.svc" {
		t.Errorf("serin-xds does not verify serin's certificate: %v", vc)
	}
	if sds := up.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs(); len(sds) != 1 || sds[0].GetName() != "default" {
		t.Errorf("client certificate %v, want the workload certificate (SDS default)", sds)
	}

	bad := opts
	bad.XDSCABundle = ""
	if _, err := RenderBootstrapOverride("shop", bad); err == nil {
		t.Error("a bootstrap without serin's CA rendered while TLS is on")
	}
	bad.XDSPlaintext = true
	if cm, err := RenderBootstrapOverride("shop", bad); err != nil || strings.Contains(cm.Data[bootstrapDataKey], "transport_socket") {
		t.Errorf("plaintext: %v", err)
	}

	bad = opts
	bad.XDSAddress = "serin-xds"
	if _, err := RenderBootstrapOverride("shop", bad); err == nil {
		t.Error("an address without a port rendered")
	}
	bad = cases(t)["grpc-google-grpc"].Options
	if _, err := RenderBootstrapOverride("shop", bad); err == nil {
		t.Error("google_grpc mode has no bootstrap override")
	}
}
