package routes

import (
	"cmp"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/xds/model"
)

// HTTPRoute is the release's HTTPRoute. Its rules, first match first:
//   - A/B (the release's matches, within service.match): canary only;
//   - with session affinity and canary traffic: a request carrying the
//     canary's cookie (or the primary's, when it has its own) stays there;
//   - the default (service.match, or everything): stable and canary by
//     weight, the canary's answers setting its cookie, and a mirror of the
//     given share to the canary while mirroring.
//
// Every rule carries the release's header changes, rewrite and timeout. A
// match condition Gateway API cannot express is an error naming it.
func HTTPRoute(r *model.Release) (*gwv1.HTTPRoute, error) {
	base, err := httpMatches(r.ServiceMatch)
	if err != nil {
		return nil, fmt.Errorf("service.match: %w", err)
	}
	var rules []gwv1.HTTPRouteRule
	if len(r.Match) > 0 {
		ab, err := httpMatches(within(r.Match, r.ServiceMatch))
		if err != nil {
			return nil, fmt.Errorf("analysis.match: %w", err)
		}
		rules = append(rules, gwv1.HTTPRouteRule{Matches: ab, BackendRefs: []gwv1.HTTPBackendRef{
			{BackendRef: backend(r, v1alpha1.TrackCanary, 100)}}})
	}
	_, canary := weights(r)
	sa := r.SessionAffinity
	if sa != nil && canary > 0 {
		for _, t := range []v1alpha1.Track{v1alpha1.TrackCanary, v1alpha1.TrackStable} {
			if t == v1alpha1.TrackStable && sa.PrimaryCookieName == "" {
				continue
			}
			rules = append(rules, gwv1.HTTPRouteRule{
				Matches:     withCookie(base, sa.CookieNameOf(t), cookieValue(r, t)),
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: backend(r, t, 100)}},
			})
		}
	}
	def := gwv1.HTTPRouteRule{Matches: base}
	for _, b := range split(r) {
		hb := gwv1.HTTPBackendRef{BackendRef: b}
		if sa != nil && canary > 0 {
			t := trackOf(r, b)
			if t == v1alpha1.TrackCanary || sa.PrimaryCookieName != "" {
				hb.Filters = setCookie(sa, t, cookieValue(r, t))
			}
		}
		def.BackendRefs = append(def.BackendRefs, hb)
	}
	if m := mirror(r); m != nil {
		def.Filters = append(def.Filters, gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestMirror, RequestMirror: m})
	}
	rules = append(rules, def)
	for i := range rules {
		if err := decorate(r, &rules[i]); err != nil {
			return nil, err
		}
	}
	return &gwv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: objectMeta(r),
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: parents(r)},
			Hostnames:       hostnames(r),
			Rules:           rules,
		},
	}, nil
}

// decorate adds the release's header changes, rewrite and timeout to a
// rule. Gateway API rewrites a path prefix only for a rule with exactly
// one PathPrefix match; a rule matching everything gets the prefix "/".
func decorate(r *model.Release, rule *gwv1.HTTPRouteRule) error {
	req, resp := headerFilters(r.Headers)
	if req != nil {
		rule.Filters = append(rule.Filters, gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: req})
	}
	if resp != nil {
		rule.Filters = append(rule.Filters, gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: resp})
	}
	if rw := r.Rewrite; rw != nil && (rw.URI != "" || rw.Authority != "") {
		f := &gwv1.HTTPURLRewriteFilter{}
		if rw.Authority != "" {
			f.Hostname = ptr.To(gwv1.PreciseHostname(rw.Authority))
		}
		if rw.URI != "" {
			if len(rule.Matches) == 0 {
				rule.Matches = []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/")}}}
			}
			if len(rule.Matches) != 1 || rule.Matches[0].Path == nil || *rule.Matches[0].Path.Type != gwv1.PathMatchPathPrefix {
				return fmt.Errorf("service.rewrite.uri: Gateway API rewrites a path prefix only for one uri prefix match")
			}
			f.Path = &gwv1.HTTPPathModifier{Type: gwv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr.To(rw.URI)}
		}
		rule.Filters = append(rule.Filters, gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterURLRewrite, URLRewrite: f})
	}
	if d := duration(r.Timeout); d != nil {
		rule.Timeouts = &gwv1.HTTPRouteTimeouts{Request: d}
	}
	return nil
}

// within is every A/B match narrowed by every service match: the A/B
// rule must not take requests the release does not route at all.
func within(ab, service []model.RequestMatch) []model.RequestMatch {
	if len(service) == 0 {
		return ab
	}
	var out []model.RequestMatch
	for _, s := range service {
		for _, m := range ab {
			both := s
			both.Headers = append(slices.Clone(s.Headers), m.Headers...)
			both.QueryParams = append(slices.Clone(s.QueryParams), m.QueryParams...)
			if m.URI != nil {
				both.URI = m.URI
			}
			if m.Method != "" {
				both.Method = m.Method
			}
			out = append(out, both)
		}
	}
	return out
}

func httpMatches(ms []model.RequestMatch) ([]gwv1.HTTPRouteMatch, error) {
	var out []gwv1.HTTPRouteMatch
	for _, m := range ms {
		hm, err := httpMatch(m)
		if err != nil {
			return nil, err
		}
		out = append(out, hm)
	}
	return out, nil
}

func httpMatch(m model.RequestMatch) (gwv1.HTTPRouteMatch, error) {
	var out gwv1.HTTPRouteMatch
	switch {
	case m.Authority != nil:
		return out, fmt.Errorf("a Gateway API route cannot match authority")
	case m.Scheme != nil:
		return out, fmt.Errorf("a Gateway API route cannot match scheme")
	case m.IgnoreURICase:
		return out, fmt.Errorf("a Gateway API route cannot match a uri ignoring case")
	case len(m.WithoutHeaders) > 0:
		return out, fmt.Errorf("a Gateway API route cannot match withoutHeaders")
	case m.MethodPattern != nil:
		return out, fmt.Errorf("a Gateway API route matches a method exactly only")
	}
	for _, h := range m.Headers {
		typ, val := stringMatch(h)
		out.Headers = append(out.Headers, gwv1.HTTPHeaderMatch{Type: ptr.To(gwv1.HeaderMatchType(typ)), Name: gwv1.HTTPHeaderName(h.Name), Value: val})
	}
	for _, q := range m.QueryParams {
		typ, val := stringMatch(q)
		out.QueryParams = append(out.QueryParams, gwv1.HTTPQueryParamMatch{Type: ptr.To(gwv1.QueryParamMatchType(typ)), Name: gwv1.HTTPHeaderName(q.Name), Value: val})
	}
	if u := m.URI; u != nil {
		out.Path = &gwv1.HTTPPathMatch{}
		switch {
		case u.Exact != "":
			out.Path.Type, out.Path.Value = ptr.To(gwv1.PathMatchExact), ptr.To(u.Exact)
		case u.Prefix != "":
			out.Path.Type, out.Path.Value = ptr.To(gwv1.PathMatchPathPrefix), ptr.To(u.Prefix)
		default:
			_, val := stringMatch(*u)
			out.Path.Type, out.Path.Value = ptr.To(gwv1.PathMatchRegularExpression), ptr.To(val)
		}
	}
	if m.Method != "" {
		if !slices.Contains(httpMethods, m.Method) {
			return out, fmt.Errorf("a Gateway API route cannot match the method %q", m.Method)
		}
		out.Method = ptr.To(gwv1.HTTPMethod(m.Method))
	}
	return out, nil
}

var httpMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
	http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch}

// stringMatch is a string match as Gateway API's Exact or
// RegularExpression (a full match, as Envoy's safe regex).
func stringMatch(s model.StringMatch) (string, string) {
	switch {
	case s.Exact != "":
		return "Exact", s.Exact
	case s.Prefix != "":
		return "RegularExpression", regexp.QuoteMeta(s.Prefix) + ".*"
	case s.Suffix != "":
		return "RegularExpression", ".*" + regexp.QuoteMeta(s.Suffix)
	case s.Regex != "":
		return "RegularExpression", s.Regex
	}
	return "RegularExpression", ".*"
}

// cookieValue is what a track's affinity cookie carries: its revision.
func cookieValue(r *model.Release, t v1alpha1.Track) string {
	if rev := r.Track(t).Revision; rev != "" {
		return rev
	}
	return string(t)
}

// withCookie is each of base (or everything) narrowed to requests whose
// Cookie header carries name=value.
func withCookie(base []gwv1.HTTPRouteMatch, name, value string) []gwv1.HTTPRouteMatch {
	cookie := gwv1.HTTPHeaderMatch{Type: ptr.To(gwv1.HeaderMatchRegularExpression), Name: "Cookie",
		Value: "(.*; ?)?" + regexp.QuoteMeta(name+"="+value) + "(;.*)?"}
	if len(base) == 0 {
		return []gwv1.HTTPRouteMatch{{Headers: []gwv1.HTTPHeaderMatch{cookie}}}
	}
	out := make([]gwv1.HTTPRouteMatch, len(base))
	for i, m := range base {
		m.Headers = append(slices.Clone(m.Headers), cookie)
		out[i] = m
	}
	return out
}

// setCookie is the response filter that gives a client track t's cookie.
func setCookie(sa *model.SessionAffinity, t v1alpha1.Track, value string) []gwv1.HTTPRouteFilter {
	attrs := []string{sa.CookieNameOf(t) + "=" + value}
	if sa.MaxAge > 0 {
		attrs = append(attrs, "Max-Age="+strconv.FormatInt(int64(sa.MaxAge.Seconds()), 10))
	}
	attrs = append(attrs, "Path="+cmp.Or(sa.Path, "/"))
	if sa.Domain != "" {
		attrs = append(attrs, "Domain="+sa.Domain)
	}
	if sa.HTTPOnly {
		attrs = append(attrs, "HttpOnly")
	}
	if sa.Secure {
		attrs = append(attrs, "Secure")
	}
	if sa.SameSite != "" {
		attrs = append(attrs, "SameSite="+sa.SameSite)
	}
	if sa.Partitioned {
		attrs = append(attrs, "Partitioned")
	}
	return []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{
		Add: []gwv1.HTTPHeader{{Name: "Set-Cookie", Value: strings.Join(attrs, "; ")}}}}}
}
