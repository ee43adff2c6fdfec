package translate

import (
	"errors"
	"strings"
	"testing"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/serin-dev/serin/xds/model"
)

// goodRelease is a release with every feature, whose translation each
// test below breaks in one place.
func goodRelease() *model.Release {
	return &model.Release{
		Namespace: "test", Service: "podinfo", Port: 9898, Protocol: model.HTTP,
		Stable:          model.TrackEndpoints{Revision: "a1", Endpoints: []model.Endpoint{{IP: "10.0.0.1", Port: 9898, Ready: true}, {IP: "10.0.0.2", Port: 9898, Ready: true}}},
		Canary:          model.TrackEndpoints{Revision: "b2", Endpoints: []model.Endpoint{{IP: "10.0.0.3", Port: 9898, Ready: true}}},
		CanaryWeight:    20,
		Match:           []model.RequestMatch{{Headers: []model.StringMatch{{Name: "x-canary", Regex: "yes|always"}}}},
		Mirror:          &model.Mirror{Percent: 10},
		SessionAffinity: &model.SessionAffinity{CookieName: "s"},
	}
}

func goodResources(t *testing.T) *Resources {
	t.Helper()
	res, err := Translate(goodRelease(), Options{SocketListeners: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(res); err != nil {
		t.Fatalf("the unbroken resources must validate: %v", err)
	}
	return res
}

func route(res *Resources, name string) *routev3.Route {
	for _, r := range res.Routes[0].GetVirtualHosts()[0].GetRoutes() {
		if r.GetName() == name {
			return r
		}
	}
	panic("no route " + name)
}

func endpoints(res *Resources, name string) *endpointv3.ClusterLoadAssignment {
	for _, e := range res.Endpoints {
		if e.GetClusterName() == name {
			return e
		}
	}
	panic("no endpoints " + name)
}

// hcmOf unpacks the connection manager of a listener (API or socket).
func hcmOf(t *testing.T, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	a := l.GetApiListener().GetApiListener()
	if a == nil {
		a = l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig()
	}
	h := &hcmv3.HttpConnectionManager{}
	if err := a.UnmarshalTo(h); err != nil {
		t.Fatal(err)
	}
	return h
}

// setHCM packs h back into l.
func setHCM(t *testing.T, l *listenerv3.Listener, h *hcmv3.HttpConnectionManager) {
	t.Helper()
	a, err := anypb.New(h)
	if err != nil {
		t.Fatal(err)
	}
	if l.GetApiListener() != nil {
		l.ApiListener.ApiListener = a
		return
	}
	l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
}

func TestValidateChecks(t *testing.T) {
	const weighted = "serin/test/podinfo/9898"
	tests := []struct {
		name   string
		break_ func(t *testing.T, res *Resources)
		want   error
		where  string // a fragment of the error's path
	}{{
		name: "ring minimum above maximum",
		break_: func(_ *testing.T, res *Resources) {
			res.Clusters[0].LbPolicy = clusterv3.Cluster_RING_HASH
			res.Clusters[0].LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
				MinimumRingSize: wrapperspb.UInt64(4096), MaximumRingSize: wrapperspb.UInt64(1024)}}
		},
		want: ErrRingSize, where: "cluster",
	}, {
		name: "locality weights sum to 0",
		break_: func(_ *testing.T, res *Resources) {
			for _, l := range endpoints(res, weighted).GetEndpoints() {
				l.LoadBalancingWeight = wrapperspb.UInt32(0)
			}
		},
		want: ErrZeroLocalityWeights, where: `endpoints "serin/test/podinfo/9898"`,
	}, {
		name: "locality weights unset",
		break_: func(_ *testing.T, res *Resources) {
			endpoints(res, weighted+"/canary").GetEndpoints()[0].LoadBalancingWeight = nil
		},
		want: ErrZeroLocalityWeights, where: "canary",
	}, {
		name: "locality without ID",
		break_: func(_ *testing.T, res *Resources) {
			endpoints(res, weighted).GetEndpoints()[1].Locality = nil
		},
		want: ErrLocalityWithoutID,
	}, {
		name: "same address in two localities",
		break_: func(_ *testing.T, res *Resources) {
			ls := endpoints(res, weighted).GetEndpoints()
			ls[1].LbEndpoints = append(ls[1].LbEndpoints, proto.Clone(ls[0].LbEndpoints[0]).(*endpointv3.LbEndpoint))
		},
		want: ErrDuplicateEndpoint, where: "10.0.0.1:9898",
	}, {
		name: "duplicate domain in one virtual host",
		break_: func(_ *testing.T, res *Resources) {
			vh := res.Routes[0].GetVirtualHosts()[0]
			vh.Domains = append(vh.Domains, vh.Domains[0])
		},
		want: ErrDuplicateDomain, where: "virtual_hosts[0]",
	}, {
		name: "duplicate domain across virtual hosts",
		break_: func(_ *testing.T, res *Resources) {
			rc := res.Routes[0]
			rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
				Name: "other", Domains: []string{"other", rc.GetVirtualHosts()[0].GetDomains()[2]},
				Routes: []*routev3.Route{proto.Clone(route(res, DefaultRouteName)).(*routev3.Route)},
			})
		},
		want: ErrDuplicateDomain, where: `"other"`,
	}, {
		name: "invalid RE2 in a header match",
		break_: func(_ *testing.T, res *Resources) {
			//lint:ignore SA1019 serin spells header conditions in the fields every xDS client reads
			route(res, MatchRoutePrefix+"0").GetMatch().GetHeaders()[0].GetSafeRegexMatch().Regex = "(unclosed"
		},
		want: ErrInvalidRegex, where: "virtual_hosts[0].routes[0].match.headers[0].safe_regex_match",
	}, {
		name: "invalid RE2 in a route table inlined in an API listener",
		break_: func(t *testing.T, res *Resources) {
			l := res.Listeners[0]
			h := hcmOf(t, l)
			rc := proto.Clone(res.Routes[0]).(*routev3.RouteConfiguration)
			rc.VirtualHosts[0].Routes[0].Match.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "a**"}}
			h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
			setHCM(t, l, h)
		},
		want: ErrInvalidRegex, where: "api_listener.api_listener(envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager).route_config",
	}, {
		name: "router not last",
		break_: func(t *testing.T, res *Resources) {
			l := res.Listeners[len(res.Listeners)-1] // the socket listener
			h := hcmOf(t, l)
			h.HttpFilters = append(h.HttpFilters, &hcmv3.HttpFilter{
				Name: "envoy.filters.http.cors", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&corsv3.Cors{})},
			})
			setHCM(t, l, h)
		},
		want: ErrRouterNotLast, where: "filter_chains[0].filters[0].typed_config",
	}, {
		name: "router twice",
		break_: func(t *testing.T, res *Resources) {
			l := res.Listeners[0]
			h := hcmOf(t, l)
			h.HttpFilters = append([]*hcmv3.HttpFilter{{
				Name: "first", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&routerv3.Router{})},
			}}, h.HttpFilters...)
			setHCM(t, l, h)
		},
		want: ErrRouterNotLast,
	}, {
		name: "no HTTP filter at all",
		break_: func(t *testing.T, res *Resources) {
			l := res.Listeners[0]
			h := hcmOf(t, l)
			h.HttpFilters = nil
			setHCM(t, l, h)
		},
		want: ErrRouterNotLast,
	}, {
		name: "mirror with both cluster and cluster_header",
		break_: func(_ *testing.T, res *Resources) {
			route(res, DefaultRouteName).GetRoute().GetRequestMirrorPolicies()[0].ClusterHeader = "x-mirror-to"
		},
		want: ErrMirrorClusterTarget, where: "request_mirror_policies[0]",
	}, {
		name: "mirror with neither",
		break_: func(_ *testing.T, res *Resources) {
			route(res, DefaultRouteName).GetRoute().GetRequestMirrorPolicies()[0].Cluster = ""
		},
		want: ErrMirrorClusterTarget,
	}, {
		name: "weighted clusters summing to 0",
		break_: func(_ *testing.T, res *Resources) {
			route(res, DefaultRouteName).GetRoute().ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{
					{Name: weighted + "/stable", Weight: wrapperspb.UInt32(0)},
					{Name: weighted + "/canary", Weight: wrapperspb.UInt32(0)},
				},
			}}
		},
		want: ErrZeroClusterWeights, where: "weighted_clusters",
	}, {
		name: "Any of an unregistered type",
		break_: func(_ *testing.T, res *Resources) {
			res.Clusters[0].TypedExtensionProtocolOptions = map[string]*anypb.Any{
				"x": {TypeUrl: "type.googleapis.com/serin.test.DoesNotExist", Value: []byte{}},
			}
		},
		want: ErrUnknownType, where: `typed_extension_protocol_options["x"]`,
	}, {
		name: "TypedStruct naming an unregistered type",
		break_: func(_ *testing.T, res *Resources) {
			ts := &xdstypev3.TypedStruct{TypeUrl: "type.googleapis.com/serin.test.DoesNotExist", Value: &structpb.Struct{}}
			res.Clusters[0].TypedExtensionProtocolOptions = map[string]*anypb.Any{"x": toAny(ts)}
		},
		want: ErrUnknownType,
	}, {
		name: "duplicate cluster names",
		break_: func(_ *testing.T, res *Resources) {
			res.Clusters = append(res.Clusters, proto.Clone(res.Clusters[0]).(*clusterv3.Cluster))
		},
		want: ErrDuplicateName,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := goodResources(t)
			tt.break_(t, res)
			err := Validate(res)
			if !errors.Is(err, tt.want) {
				t.Fatalf("want %v, got %v", tt.want, err)
			}
			if !strings.Contains(err.Error(), tt.where) {
				t.Errorf("error %q does not point at %q", err, tt.where)
			}
		})
	}
}

// TestValidateLooksInsideAny: ValidateAll stops at Any, Validate does not.
// A connection manager without a stat prefix breaks a PGV rule that only
// the unpacked message can report.
func TestValidateLooksInsideAny(t *testing.T) {
	res := goodResources(t)
	l := res.Listeners[0]
	h := hcmOf(t, l)
	h.StatPrefix = ""
	setHCM(t, l, h)
	if err := l.ValidateAll(); err != nil {
		t.Fatalf("ValidateAll was expected to miss the error inside the Any: %v", err)
	}
	err := Validate(res)
	if err == nil || !strings.Contains(err.Error(), "StatPrefix") {
		t.Fatalf("want the stat_prefix rule, got %v", err)
	}
}

// TestValidateTypedStruct: a payload given as a TypedStruct is decoded into
// the type it names and validated like an Any.
func TestValidateTypedStruct(t *testing.T) {
	res := goodResources(t)
	bad, err := structpb.NewStruct(map[string]any{"max_concurrent_streams": 0, "unknown_field": true})
	if err != nil {
		t.Fatal(err)
	}
	res.Clusters[0].TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: toAny(&xdstypev3.TypedStruct{
		TypeUrl: "type.googleapis.com/envoy.config.core.v3.Http2ProtocolOptions",
		Value:   bad,
	})}
	if err := Validate(res); err == nil || !strings.Contains(err.Error(), "unknown_field") {
		t.Fatalf("want the TypedStruct payload rejected, got %v", err)
	}
}

func TestValidateRejectsPGVViolations(t *testing.T) {
	res := goodResources(t)
	res.Clusters[0].ConnectTimeout = nil
	res.Clusters[0].EdsClusterConfig.EdsConfig = &corev3.ConfigSource{} // no specifier
	err := Validate(res)
	if err == nil || !strings.Contains(err.Error(), "ConfigSourceSpecifier") {
		t.Fatalf("want the config source rule, got %v", err)
	}
}
