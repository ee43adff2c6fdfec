package routes

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/xds/model"
)

// GRPCRoute is the release's GRPCRoute: A/B header matches to the canary
// only, then stable and canary by weight (a mirror of the given share to
// the canary while mirroring), with the release's header changes. gRPC
// matches are on headers; a match on anything else is an error.
func GRPCRoute(r *model.Release) (*gwv1.GRPCRoute, error) {
	base, err := grpcMatches(r.ServiceMatch)
	if err != nil {
		return nil, fmt.Errorf("service.match: %w", err)
	}
	var rules []gwv1.GRPCRouteRule
	if len(r.Match) > 0 {
		ab, err := grpcMatches(within(r.Match, r.ServiceMatch))
		if err != nil {
			return nil, fmt.Errorf("analysis.match: %w", err)
		}
		rules = append(rules, gwv1.GRPCRouteRule{Matches: ab,
			BackendRefs: []gwv1.GRPCBackendRef{{BackendRef: backend(r, v1alpha1.TrackCanary, 100)}}})
	}
	def := gwv1.GRPCRouteRule{Matches: base}
	for _, b := range split(r) {
		def.BackendRefs = append(def.BackendRefs, gwv1.GRPCBackendRef{BackendRef: b})
	}
	if m := mirror(r); m != nil {
		def.Filters = append(def.Filters, gwv1.GRPCRouteFilter{Type: gwv1.GRPCRouteFilterRequestMirror, RequestMirror: m})
	}
	rules = append(rules, def)
	req, resp := headerFilters(r.Headers)
	for i := range rules {
		if req != nil {
			rules[i].Filters = append(rules[i].Filters, gwv1.GRPCRouteFilter{Type: gwv1.GRPCRouteFilterRequestHeaderModifier, RequestHeaderModifier: req})
		}
		if resp != nil {
			rules[i].Filters = append(rules[i].Filters, gwv1.GRPCRouteFilter{Type: gwv1.GRPCRouteFilterResponseHeaderModifier, ResponseHeaderModifier: resp})
		}
	}
	return &gwv1.GRPCRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "GRPCRoute"},
		ObjectMeta: objectMeta(r),
		Spec: gwv1.GRPCRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: parents(r)},
			Hostnames:       hostnames(r),
			Rules:           rules,
		},
	}, nil
}

// grpcMatches are ms as GRPCRoute matches, which test headers only: a
// condition on anything else is an error naming it, never a match that
// takes more requests than asked.
func grpcMatches(ms []model.RequestMatch) ([]gwv1.GRPCRouteMatch, error) {
	var out []gwv1.GRPCRouteMatch
	for _, m := range ms {
		if m.URI != nil || len(m.QueryParams) > 0 || m.Method != "" || m.MethodPattern != nil || m.Authority != nil ||
			m.Scheme != nil || m.IgnoreURICase || len(m.WithoutHeaders) > 0 {
			return nil, fmt.Errorf("a GRPCRoute matches headers only")
		}
		var gm gwv1.GRPCRouteMatch
		for _, h := range m.Headers {
			typ, val := stringMatch(h)
			gm.Headers = append(gm.Headers, gwv1.GRPCHeaderMatch{Type: ptr.To(gwv1.GRPCHeaderMatchType(typ)), Name: gwv1.GRPCHeaderName(h.Name), Value: val})
		}
		out = append(out, gm)
	}
	return out, nil
}

// TCPRoute is the release's TCPRoute: stable and canary by weight.
func TCPRoute(r *model.Release) *gwv1.TCPRoute {
	return &gwv1.TCPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "TCPRoute"},
		ObjectMeta: objectMeta(r),
		Spec: gwv1.TCPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: parents(r)},
			Rules:           []gwv1.TCPRouteRule{{BackendRefs: split(r)}},
		},
	}
}
