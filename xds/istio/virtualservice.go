package istio

import (
	"slices"

	networking "istio.io/api/networking/v1alpha3"
	clientnetworking "istio.io/client-go/pkg/apis/networking/v1alpha3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/xds/model"
)

// RenderVirtualService is the Istio VirtualService that binds a release's
// hosts to its gateways, as Flagger's Istio router writes one: named after
// the Service, in its namespace, one route to the Service's port. Without
// it an ingress gateway has no virtual host for the release's hosts, and
// serin's gateway patches (which select virtual hosts by those hosts) would
// find nothing to merge the weighted cluster onto. With Delegation it is a
// delegate instead (no hosts, no gateways) that another VirtualService
// hands routes to. Nil when the release names no gateway and is no
// delegate, or is TCP: the mesh's own routes carry it then.
//
// The caller writes it only where no VirtualService of that name exists
// that serin did not make, and only for hosts the release's namespace owns
// without it: serin's own VirtualServices claim no host
// (v1alpha1.HostOwnership).
func RenderVirtualService(r *model.Release) *clientnetworking.VirtualService {
	if r.Protocol == model.TCP || len(r.Gateways) == 0 && !r.Delegation {
		return nil
	}
	vs := &clientnetworking.VirtualService{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.istio.io/v1alpha3", Kind: "VirtualService"},
		ObjectMeta: releaseObjectMeta(r, r.Namespace, r.Service),
	}
	if !r.Delegation {
		vs.Spec.Hosts = slices.Sorted(slices.Values(r.EffectiveHosts()))
		vs.Spec.Gateways = slices.Sorted(slices.Values(r.Gateways))
	}
	vs.Spec.Http = []*networking.HTTPRoute{{
		Name: "serin",
		Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{
			Host: r.DefaultHosts()[0],
			Port: &networking.PortSelector{Number: r.Port},
		}}},
	}}
	return vs
}
