package istio

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"
	clientnetworking "istio.io/client-go/pkg/apis/networking/v1alpha3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/xds/model"
	"github.com/serin-dev/serin/xds/translate"
)

// ReleaseHash is the label value that identifies a release's objects: the
// first 16 hex digits of the SHA-256 of its key (keys contain "/", which
// label values may not).
func ReleaseHash(r *model.Release) string {
	sum := sha256.Sum256([]byte(r.Key()))
	return hex.EncodeToString(sum[:8])
}

// EnvoyFilterName is the deterministic name of a release's EnvoyFilter:
// readable, and unique through the hash even where names joined by "-"
// would collide (namespace "a-b" + service "c" versus "a" + "b-c").
func EnvoyFilterName(r *model.Release) string {
	return fmt.Sprintf("serin-%s-%s-%d-%s", r.Namespace, r.Service, r.Port, ReleaseHash(r)[:8])
}

// SidecarVirtualHost is the name Istio gives the service's virtual host in
// a sidecar's outbound route table for the port.
func SidecarVirtualHost(r *model.Release) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local:%d", r.Service, r.Namespace, r.Port)
}

// GatewayEnvoyFilterName names the EnvoyFilter of a release's gateway
// patches.
func GatewayEnvoyFilterName(r *model.Release) string { return EnvoyFilterName(r) + "-gateway" }

// RenderEnvoyFilters returns the EnvoyFilters that splice release r into
// Istio's proxies, sorted by namespace and name. It is pure: the same
// release and options give the same objects. One object per patch
// context, so that istiod applies the clusters and the routes that use
// them in the same push:
//
//   - sidecars (SIDECAR_OUTBOUND): in the release's own namespace, where
//     Istio applies it to that namespace's proxies only, so a release can
//     never reach another tenant's proxies; with Options.MeshWideSidecars,
//     in the root namespace instead (every client in the mesh).
//   - gateways (GATEWAY), when the release names gateways: in the root
//     namespace, where the shared gateways' proxies find it. Its patches
//     select virtual hosts by the release's hosts, so the caller must pass
//     only hosts the release's namespace owns (v1alpha1.HostOwnership).
func RenderEnvoyFilters(r *model.Release, opts Options) ([]*clientnetworking.EnvoyFilter, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", r.Key(), err)
	}
	res, err := translate.Translate(r, o.Translate)
	if err != nil {
		return nil, err
	}
	p := patcher{r: r, res: res, proxy: proxyMatch(o.ProxyMetadata)}
	sidecarNS := r.Namespace
	if o.MeshWideSidecars {
		sidecarNS = o.Namespace
	}
	scopes := []filterScope{{networking.EnvoyFilter_SIDECAR_OUTBOUND, sidecarNS, EnvoyFilterName(r)}}
	if len(r.Gateways) > 0 && r.Protocol != model.TCP {
		scopes = append(scopes, filterScope{networking.EnvoyFilter_GATEWAY, o.Namespace, GatewayEnvoyFilterName(r)})
	}
	var out []*clientnetworking.EnvoyFilter
	for _, sc := range scopes {
		patches, err := p.patches(sc.ctx)
		if err != nil {
			return nil, fmt.Errorf("release %s: %w", r.Key(), err)
		}
		ef := &clientnetworking.EnvoyFilter{
			TypeMeta:   metav1.TypeMeta{APIVersion: "networking.istio.io/v1alpha3", Kind: "EnvoyFilter"},
			ObjectMeta: releaseObjectMeta(r, sc.namespace, sc.name),
		}
		ef.Spec.ConfigPatches = patches
		out = append(out, ef)
	}
	slices.SortFunc(out, func(a, b *clientnetworking.EnvoyFilter) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// releaseObjectMeta names an object serin writes for release r, with the
// labels by which it is found and pruned, and the release's key.
func releaseObjectMeta(r *model.Release, namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:        name,
		Namespace:   namespace,
		Labels:      map[string]string{LabelManagedBy: ManagedBy, LabelRelease: ReleaseHash(r)},
		Annotations: map[string]string{AnnotationRelease: r.Key()},
	}
}

// filterScope is one EnvoyFilter of a release: the proxies it patches and
// where it lives.
type filterScope struct {
	ctx             networking.EnvoyFilter_PatchContext
	namespace, name string
}

func proxyMatch(md map[string]string) *networking.EnvoyFilter_ProxyMatch {
	if len(md) == 0 {
		return nil
	}
	return &networking.EnvoyFilter_ProxyMatch{Metadata: md}
}

// patcher builds the config patches of one release.
type patcher struct {
	r     *model.Release
	res   *translate.Resources
	proxy *networking.EnvoyFilter_ProxyMatch
}

func (p *patcher) patches(ctx networking.EnvoyFilter_PatchContext) ([]*networking.EnvoyFilter_EnvoyConfigObjectPatch, error) {
	var out []*networking.EnvoyFilter_EnvoyConfigObjectPatch
	add := func(applyTo networking.EnvoyFilter_ApplyTo, match *networking.EnvoyFilter_EnvoyConfigObjectMatch, op networking.EnvoyFilter_Patch_Operation, value proto.Message) error {
		v, err := toStruct(value)
		if err != nil {
			return err
		}
		match.Context = ctx
		match.Proxy = p.proxy
		out = append(out, &networking.EnvoyFilter_EnvoyConfigObjectPatch{
			ApplyTo: applyTo,
			Match:   match,
			Patch:   &networking.EnvoyFilter_Patch{Operation: op, Value: v},
		})
		return nil
	}

	// Clusters first: ADD is not ordered against the route patches by
	// istiod, but reading top to bottom should match what the routes use.
	for _, c := range p.res.Clusters {
		if err := add(networking.EnvoyFilter_CLUSTER, &networking.EnvoyFilter_EnvoyConfigObjectMatch{}, networking.EnvoyFilter_Patch_ADD, c); err != nil {
			return nil, err
		}
	}

	if p.r.Protocol == model.TCP {
		// Point the service's own tcp_proxy at the weighted cluster. Only
		// the cluster is set: the MERGE keeps Istio's stat prefix, access
		// log and idle timeout. Istio gives each TCP service its own
		// outbound listener, <clusterIP>_<port>; matching on the port alone
		// would also capture every other TCP service on that port.
		if len(p.r.ClusterIPs) == 0 {
			return nil, errors.New("a TCP release needs the Service's clusterIPs to find its Istio listeners")
		}
		frag, err := TCPProxyFragment(p.r.ClusterName())
		if err != nil {
			return nil, err
		}
		for _, ip := range p.r.ClusterIPs {
			match := &networking.EnvoyFilter_EnvoyConfigObjectMatch{ObjectTypes: &networking.EnvoyFilter_EnvoyConfigObjectMatch_Listener{
				Listener: &networking.EnvoyFilter_ListenerMatch{
					Name:       fmt.Sprintf("%s_%d", ip, p.r.Port),
					PortNumber: p.r.Port,
					FilterChain: &networking.EnvoyFilter_ListenerMatch_FilterChainMatch{
						Filter: &networking.EnvoyFilter_ListenerMatch_FilterMatch{Name: translate.TCPProxyFilter},
					},
				},
			}}
			if err := add(networking.EnvoyFilter_NETWORK_FILTER, match, networking.EnvoyFilter_Patch_MERGE, frag); err != nil {
				return nil, err
			}
		}
		return out, nil
	}

	inserted, def, err := splitRoutes(p.res)
	if err != nil {
		return nil, err
	}
	for _, vh := range p.virtualHosts(ctx) {
		// INSERT_FIRST puts each route at the top in turn, so the routes
		// go in last to first to come out in translate's order.
		for _, rt := range slices.Backward(inserted) {
			match := routeMatch(vh, nil)
			if err := add(networking.EnvoyFilter_HTTP_ROUTE, match, networking.EnvoyFilter_Patch_INSERT_FIRST, rt); err != nil {
				return nil, err
			}
		}
		// The default route's policies are merged onto every forwarding
		// route Istio already has for the service. istiod applies merges
		// before inserts, so the routes inserted above are not touched.
		match := routeMatch(vh, &networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch{
			Action: networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch_ROUTE,
		})
		if err := add(networking.EnvoyFilter_HTTP_ROUTE, match, networking.EnvoyFilter_Patch_MERGE, DefaultRouteFragment(def)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// virtualHosts are the route-table places the release's routes go: in a
// sidecar, the service's virtual host in the route table of its port; in
// a gateway, every virtual host serving one of the release's hosts.
// (routeConfiguration.gateway cannot narrow this: istiod fills it only for
// HTTPS servers' route tables.)
func (p *patcher) virtualHosts(ctx networking.EnvoyFilter_PatchContext) []*networking.EnvoyFilter_RouteConfigurationMatch {
	if ctx != networking.EnvoyFilter_GATEWAY {
		return []*networking.EnvoyFilter_RouteConfigurationMatch{{
			PortNumber: p.r.Port,
			Vhost:      &networking.EnvoyFilter_RouteConfigurationMatch_VirtualHostMatch{Name: SidecarVirtualHost(p.r)},
		}}
	}
	var out []*networking.EnvoyFilter_RouteConfigurationMatch
	for _, h := range p.r.EffectiveHosts() {
		out = append(out, &networking.EnvoyFilter_RouteConfigurationMatch{
			Vhost: &networking.EnvoyFilter_RouteConfigurationMatch_VirtualHostMatch{DomainName: h},
		})
	}
	return out
}

// routeMatch copies a virtual-host match and narrows it to routes.
func routeMatch(vh *networking.EnvoyFilter_RouteConfigurationMatch, rm *networking.EnvoyFilter_RouteConfigurationMatch_RouteMatch) *networking.EnvoyFilter_EnvoyConfigObjectMatch {
	m := proto.Clone(vh).(*networking.EnvoyFilter_RouteConfigurationMatch)
	m.Vhost.Route = rm
	return &networking.EnvoyFilter_EnvoyConfigObjectMatch{
		ObjectTypes: &networking.EnvoyFilter_EnvoyConfigObjectMatch_RouteConfiguration{RouteConfiguration: m},
	}
}

// splitRoutes separates translate's routes into those inserted ahead of
// Istio's (A/B and sticky) and the default route, whose policies are
// merged onto Istio's own.
func splitRoutes(res *translate.Resources) (inserted []*routev3.Route, def *routev3.Route, err error) {
	if len(res.Routes) != 1 || len(res.Routes[0].GetVirtualHosts()) != 1 {
		return nil, nil, fmt.Errorf("want one route table with one virtual host, got %d tables", len(res.Routes))
	}
	for _, rt := range res.Routes[0].GetVirtualHosts()[0].GetRoutes() {
		if rt.GetName() == translate.DefaultRouteName {
			def = rt
			continue
		}
		inserted = append(inserted, rt)
	}
	if def == nil {
		return nil, nil, fmt.Errorf("no %s route", translate.DefaultRouteName)
	}
	return inserted, def, nil
}

// DefaultRouteFragment is what the MERGE writes onto Istio's routes: the
// default route without its name and match, so Istio's keep theirs. What
// it sets replaces Istio's value (the cluster, timeout, retry fields);
// what it lists (headers, mirror policies) is appended.
func DefaultRouteFragment(def *routev3.Route) *routev3.Route {
	frag := proto.Clone(def).(*routev3.Route)
	frag.Name = ""
	frag.Match = nil
	return frag
}

// TCPProxyFragment is what the NETWORK_FILTER MERGE writes onto the
// service's tcp_proxy: only the destination cluster.
func TCPProxyFragment(cluster string) (*listenerv3.Filter, error) {
	tc := &anypb.Any{}
	if err := anypb.MarshalFrom(tc, &tcpproxyv3.TcpProxy{
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
	}, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, err
	}
	return &listenerv3.Filter{Name: translate.TCPProxyFilter, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tc}}, nil
}

// toStruct renders an Envoy message the way an EnvoyFilter carries it: its
// protojson form (proto field names, "@type" for Anys) as a Struct.
func toStruct(m proto.Message) (*structpb.Struct, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %T: %w", m, err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return structpb.NewStruct(v)
}
