package routes

import (
	"fmt"
	"maps"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/xds/model"
)

// Labels and annotations on every object serin renders here.
const (
	LabelManagedBy    = "app.kubernetes.io/managed-by"
	ManagedBy         = "serin"
	AnnotationRelease = "serin.dev/release"
)

// TrafficSplit's group, version and kind (SMI v1alpha2).
const (
	SMIGroupVersion = "split.smi-spec.io/v1alpha2"
	TrafficSplit    = "TrafficSplit"
)

// Render is the route object of release r for router: an HTTPRoute,
// GRPCRoute or TCPRoute for v1alpha1.RouterGatewayAPI (by the release's
// protocol), a TrafficSplit for v1alpha1.RouterSMI.
func Render(r *model.Release, router v1alpha1.Router) (client.Object, error) {
	switch router {
	case v1alpha1.RouterGatewayAPI:
		switch r.Protocol {
		case model.GRPC:
			return GRPCRoute(r)
		case model.TCP:
			return TCPRoute(r), nil
		}
		return HTTPRoute(r)
	case v1alpha1.RouterSMI:
		return TrafficSplitOf(r), nil
	}
	return nil, fmt.Errorf("router %q writes no route object", router)
}

func objectMeta(r *model.Release) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: r.Service, Namespace: r.Namespace,
		Labels:      map[string]string{LabelManagedBy: ManagedBy},
		Annotations: map[string]string{AnnotationRelease: r.Key()},
	}
}

// parents are the route's parentRefs: the gatewayRefs, or the Service.
func parents(r *model.Release) []gwv1.ParentReference {
	if len(r.GatewayRefs) == 0 {
		return []gwv1.ParentReference{{
			Group: ptr.To(gwv1.Group("")), Kind: ptr.To(gwv1.Kind("Service")),
			Name: gwv1.ObjectName(r.Service), Port: ptr.To(gwv1.PortNumber(r.Port)),
		}}
	}
	out := make([]gwv1.ParentReference, 0, len(r.GatewayRefs))
	for _, g := range r.GatewayRefs {
		p := gwv1.ParentReference{Name: gwv1.ObjectName(g.Name)}
		if g.Group != "" || g.Kind == "Service" {
			// Flagger's examples write group "core" for a Service.
			grp := g.Group
			if grp == "core" {
				grp = ""
			}
			p.Group = ptr.To(gwv1.Group(grp))
		}
		if g.Kind != "" {
			p.Kind = ptr.To(gwv1.Kind(g.Kind))
		}
		if g.Namespace != "" {
			p.Namespace = ptr.To(gwv1.Namespace(g.Namespace))
		}
		if g.SectionName != "" {
			p.SectionName = ptr.To(gwv1.SectionName(g.SectionName))
		}
		if g.Port != 0 {
			p.Port = ptr.To(gwv1.PortNumber(g.Port))
		}
		out = append(out, p)
	}
	return out
}

// hostnames are the release's own hosts (service.hosts) for routes
// attached to Gateways; a mesh route (GAMMA) names none.
func hostnames(r *model.Release) []gwv1.Hostname {
	if len(r.GatewayRefs) == 0 {
		return nil
	}
	def := r.DefaultHosts()
	var out []gwv1.Hostname
	for _, h := range r.Hosts {
		if !slices.Contains(def, h) {
			out = append(out, gwv1.Hostname(h))
		}
	}
	return out
}

// weights are the stable and canary weights of the default rule.
func weights(r *model.Release) (stable, canary int32) {
	w := int32(min(r.CanaryWeight, 100))
	return 100 - w, w
}

// split is the default rule's backends: stable and canary by weight,
// both always listed (as Flagger's routers do), so that the clusters a
// client watches stay the same from step to step.
func split(r *model.Release) []gwv1.BackendRef {
	stable, canary := weights(r)
	return []gwv1.BackendRef{backend(r, v1alpha1.TrackStable, stable), backend(r, v1alpha1.TrackCanary, canary)}
}

func backend(r *model.Release, t v1alpha1.Track, weight int32) gwv1.BackendRef {
	return gwv1.BackendRef{
		BackendObjectReference: backendObject(r, t),
		Weight:                 ptr.To(weight),
	}
}

func backendObject(r *model.Release, t v1alpha1.Track) gwv1.BackendObjectReference {
	name := v1alpha1.PrimaryServiceName(r.Service)
	if t == v1alpha1.TrackCanary {
		name = v1alpha1.CanaryServiceName(r.Service)
	}
	return gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: ptr.To(gwv1.PortNumber(r.Port))}
}

// duration is d in Gateway API's duration format (milliseconds).
func duration(d time.Duration) *gwv1.Duration {
	if d <= 0 {
		return nil
	}
	return ptr.To(gwv1.Duration(fmt.Sprintf("%dms", d.Milliseconds())))
}

// headerList is a sorted header list.
func headerList(m map[string]string) []gwv1.HTTPHeader {
	var out []gwv1.HTTPHeader
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, gwv1.HTTPHeader{Name: gwv1.HTTPHeaderName(k), Value: m[k]})
	}
	return out
}

// TrafficSplitOf is the SMI TrafficSplit of a release (Flagger's Linkerd
// router): the Service's traffic split between <svc>-canary and
// <svc>-primary. SMI v1alpha2 has no matches or mirroring; A/B and mirror
// steps send everything to the primary.
func TrafficSplitOf(r *model.Release) *unstructured.Unstructured {
	stable, canary := weights(r)
	meta := objectMeta(r)
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": SMIGroupVersion,
		"kind":       TrafficSplit,
		"spec": map[string]any{
			"service": r.Service,
			"backends": []any{
				map[string]any{"service": v1alpha1.CanaryServiceName(r.Service), "weight": int64(canary)},
				map[string]any{"service": v1alpha1.PrimaryServiceName(r.Service), "weight": int64(stable)},
			},
		},
	}}
	u.SetName(meta.Name)
	u.SetNamespace(meta.Namespace)
	u.SetLabels(meta.Labels)
	u.SetAnnotations(meta.Annotations)
	return u
}

// headerFilters are the release's request and response header changes;
// nil where there are none.
func headerFilters(h *model.Headers) (req, resp *gwv1.HTTPHeaderFilter) {
	if h == nil {
		return nil, nil
	}
	if len(h.RequestAdd) > 0 || len(h.RequestRemove) > 0 {
		req = &gwv1.HTTPHeaderFilter{Set: headerList(h.RequestAdd), Remove: slices.Sorted(slices.Values(h.RequestRemove))}
	}
	if len(h.ResponseAdd) > 0 || len(h.ResponseRemove) > 0 {
		resp = &gwv1.HTTPHeaderFilter{Set: headerList(h.ResponseAdd), Remove: slices.Sorted(slices.Values(h.ResponseRemove))}
	}
	return req, resp
}

// trackOf is the track a backend of the release's split sends to.
func trackOf(r *model.Release, b gwv1.BackendRef) v1alpha1.Track {
	if string(b.Name) == v1alpha1.CanaryServiceName(r.Service) {
		return v1alpha1.TrackCanary
	}
	return v1alpha1.TrackStable
}

// mirror is the filter that copies the release's mirrored share of the
// requests to the canary; nil when it mirrors nothing.
func mirror(r *model.Release) *gwv1.HTTPRequestMirrorFilter {
	m := r.Mirror
	if m == nil {
		return nil
	}
	f := &gwv1.HTTPRequestMirrorFilter{BackendRef: backendObject(r, v1alpha1.TrackCanary)}
	if m.Percent < 100 {
		f.Percent = ptr.To(int32(m.Percent))
	}
	return f
}
