package translate

import (
	"cmp"
	"net/netip"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/serin-dev/serin/xds/model"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// loadAssignments builds the weighted ClusterLoadAssignment (one locality
// per track, weighted 100-w and w) and one per track (a single locality).
func (t *translator) loadAssignments() []*endpointv3.ClusterLoadAssignment {
	weighted := &endpointv3.ClusterLoadAssignment{ClusterName: t.r.ClusterName()}
	for _, track := range []v1alpha1.Track{v1alpha1.TrackStable, v1alpha1.TrackCanary} {
		// A locality at weight 0 is left out rather than sent with weight
		// 0: grpc-go drops such localities anyway, and Envoy would count
		// its hosts toward panic and overprovisioning maths.
		if w := t.weight(track); w > 0 {
			weighted.Endpoints = append(weighted.Endpoints, t.locality(track, w))
		}
	}
	return []*endpointv3.ClusterLoadAssignment{
		weighted,
		{ClusterName: t.r.TrackClusterName(v1alpha1.TrackStable), Endpoints: []*endpointv3.LocalityLbEndpoints{t.locality(v1alpha1.TrackStable, localityWeightTotal)}},
		{ClusterName: t.r.TrackClusterName(v1alpha1.TrackCanary), Endpoints: []*endpointv3.LocalityLbEndpoints{t.locality(v1alpha1.TrackCanary, localityWeightTotal)}},
	}
}

// locality holds the endpoints of one track. Every locality carries an ID
// (region "serin", sub_zone = track): grpc-go NACKs a locality without one.
func (t *translator) locality(track v1alpha1.Track, weight uint32) *endpointv3.LocalityLbEndpoints {
	te := t.r.Track(track)
	eps := slices.Clone(te.Endpoints)
	slices.SortFunc(eps, func(a, b model.Endpoint) int {
		// model.Validate has checked that every IP parses.
		if c := netip.MustParseAddr(a.IP).Compare(netip.MustParseAddr(b.IP)); c != 0 {
			return c
		}
		return cmp.Compare(a.Port, b.Port)
	})
	md := trackMetadata(track, te.Revision, t.cookieMetadata(track, te.Revision))
	l := &endpointv3.LocalityLbEndpoints{
		Locality:            &corev3.Locality{Region: LocalityRegion, SubZone: string(track)},
		LoadBalancingWeight: wrapperspb.UInt32(weight),
		LbEndpoints:         make([]*endpointv3.LbEndpoint, 0, len(eps)),
	}
	for _, ep := range eps {
		health := corev3.HealthStatus_HEALTHY
		if !ep.Ready {
			// Sent, not dropped: the proxy keeps the host (and its
			// connections) and just stops picking it.
			health = corev3.HealthStatus_UNHEALTHY
		}
		l.LbEndpoints = append(l.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address:  socketAddress(ep.IP, ep.Port),
				Hostname: ep.Pod,
			}},
			HealthStatus: health,
			Metadata:     md,
		})
	}
	return l
}

// trackMetadata is the endpoint metadata filter_metadata["serin"] =
// {track, revision, cookie}; cookie (the Set-Cookie pair of session
// affinity) only under session affinity. One value is shared by the
// endpoints of a locality.
func trackMetadata(track v1alpha1.Track, revision, cookie string) *corev3.Metadata {
	fields := map[string]*structpb.Value{MetadataTrack: structpb.NewStringValue(string(track))}
	if revision != "" {
		fields[MetadataRevision] = structpb.NewStringValue(revision)
	}
	if cookie != "" {
		fields[MetadataCookie] = structpb.NewStringValue(cookie)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		MetadataNamespace: {Fields: fields},
	}}
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       ip,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
