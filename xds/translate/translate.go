package translate

import (
	"cmp"
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/serin-dev/serin/xds/model"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Metadata keys serin puts on endpoints: filter_metadata["serin"] holds
// {track, revision}. The Set-Cookie formatter and analysis read them.
const (
	MetadataNamespace   = "serin"
	MetadataTrack       = "track"
	MetadataRevision    = "revision"
	MetadataCookie      = "cookie"
	LocalityRegion      = "serin"
	localityWeightTotal = 100
)

// Translate turns one release into the Envoy resources that carry it. It is
// pure and deterministic: the same release and options give byte-identical
// resources (Any payloads are marshalled deterministically), every slice
// sorted by name. The result has passed Validate.
func Translate(r *model.Release, opts Options) (*Resources, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("release %s: %w", r.Key(), err)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("release %s: options: %w", r.Key(), err)
	}
	t := &translator{r: r, o: o, source: o.configSource()}
	res := &Resources{
		Endpoints:  t.loadAssignments(),
		Clusters:   t.clusters(),
		Visibility: r.Visibility(),
	}
	if r.Protocol != model.TCP {
		res.Routes = []*routev3.RouteConfiguration{t.routeConfiguration()}
		res.Listeners = t.apiListeners()
	}
	if o.SocketListeners {
		res.Listeners = append(res.Listeners, t.socketListener())
	}
	res.sort()
	if err := Validate(res); err != nil {
		return nil, fmt.Errorf("release %s: %w", r.Key(), err)
	}
	return res, nil
}

// translator carries what every builder needs for one release.
type translator struct {
	r      *model.Release
	o      Options
	source *corev3.ConfigSource
}

// weight is the locality weight of track t in the weighted cluster.
func (t *translator) weight(track v1alpha1.Track) uint32 {
	if track == v1alpha1.TrackCanary {
		return t.r.CanaryWeight
	}
	return localityWeightTotal - t.r.CanaryWeight
}

// statPrefix names the release in Envoy stats: serin.<ns>.<svc>.<port>.
func (t *translator) statPrefix() string {
	return fmt.Sprintf("serin.%s.%s.%d", t.r.Namespace, t.r.Service, t.r.Port)
}

func (res *Resources) sort() {
	slices.SortFunc(res.Clusters, func(a, b *clusterv3.Cluster) int { return cmp.Compare(a.GetName(), b.GetName()) })
	slices.SortFunc(res.Endpoints, func(a, b *endpointv3.ClusterLoadAssignment) int {
		return cmp.Compare(a.GetClusterName(), b.GetClusterName())
	})
	slices.SortFunc(res.Routes, func(a, b *routev3.RouteConfiguration) int { return cmp.Compare(a.GetName(), b.GetName()) })
	slices.SortFunc(res.Listeners, func(a, b *listenerv3.Listener) int { return cmp.Compare(a.GetName(), b.GetName()) })
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// toAny packs m with deterministic marshalling, so equal configs give equal
// bytes (and equal version hashes downstream). The messages packed here are
// built by this package and always marshal.
func toAny(m proto.Message) *anypb.Any {
	b, err := deterministic.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("translate: marshal %T: %v", m, err))
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}
}
