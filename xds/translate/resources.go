package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/serin-dev/serin/xds/model"
)

// Resources are the Envoy resources of one release, each slice sorted by
// name. They are values to read: callers that want to change one clone it
// first (resources built by Translate share some sub-messages).
type Resources struct {
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	Routes    []*routev3.RouteConfiguration
	Listeners []*listenerv3.Listener

	// Visibility is who may receive these resources.
	Visibility model.Visibility
}
