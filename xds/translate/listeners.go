package translate

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/serin-dev/serin/xds/model"
)

// Filter names Envoy knows these filters by.
const (
	RouterFilter          = "envoy.filters.http.router"
	HTTPConnectionManager = "envoy.filters.network.http_connection_manager"
	TCPProxyFilter        = "envoy.filters.network.tcp_proxy"
)

// httpConnectionManager fetches the release's route configuration over the
// configured source and ends in the router, the only filter grpc-go needs.
// With cors (a socket listener of a release with a CORS policy) the CORS
// filter goes before the router: the routes carry the policy.
func (t *translator) httpConnectionManager(cors bool) *anypb.Any {
	filters := []*hcmv3.HttpFilter{{
		Name:       RouterFilter,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&routerv3.Router{})},
	}}
	if cors {
		filters = append([]*hcmv3.HttpFilter{corsFilter()}, filters...)
	}
	return toAny(&hcmv3.HttpConnectionManager{
		StatPrefix: t.statPrefix(),
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    t.source,
			RouteConfigName: t.r.RouteName(),
		}},
		HttpFilters: filters,
	})
}

// apiListeners are the listeners proxyless gRPC clients resolve, one per
// name a client may dial (xds:///podinfo.test:9898). They share one HTTP
// connection manager.
func (t *translator) apiListeners() []*listenerv3.Listener {
	hcm := t.httpConnectionManager(false)
	names := t.r.ListenerNames()
	out := make([]*listenerv3.Listener, 0, len(names))
	for _, name := range names {
		out = append(out, &listenerv3.Listener{
			Name:        name,
			ApiListener: &listenerv3.ApiListener{ApiListener: hcm},
		})
	}
	return out
}

// socketListener is the listener a standalone Envoy binds for the release:
// ListenAddress and the release's port, named like the weighted cluster.
// HTTP and gRPC go through the same connection manager as the API
// listeners; TCP is proxied straight to the weighted cluster.
func (t *translator) socketListener() *listenerv3.Listener {
	f := &listenerv3.Filter{Name: HTTPConnectionManager, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.httpConnectionManager(t.r.CORS != nil)}}
	if t.r.Protocol == model.TCP {
		f = &listenerv3.Filter{Name: TCPProxyFilter, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(&tcpproxyv3.TcpProxy{
			StatPrefix:       t.statPrefix(),
			ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: t.r.ClusterName()},
		})}}
	}
	return &listenerv3.Listener{
		Name:         t.r.ClusterName(),
		Address:      socketAddress(t.o.ListenAddress, t.r.Port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{f}}},
	}
}
