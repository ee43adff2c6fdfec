package translate

import (
	"fmt"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/serin-dev/serin/xds/model"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// CORSFilter is the name Envoy (and Istio's HTTP filter chains) know the
// CORS filter by; route-level policies are keyed by it.
const CORSFilter = "envoy.filters.http.cors"

// corsFilter is the CORS filter of a connection manager serin owns. It
// does nothing on a route without a policy.
func corsFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: CORSFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: toAny(&corsv3.Cors{})}}
}

// perFilterConfig is the release's per-route filter configuration: the
// CORS policy, wrapped as optional so that a client without the filter
// (grpc-go) skips it instead of rejecting the route.
func (t *translator) perFilterConfig() map[string]*anypb.Any {
	c := t.r.CORS
	if c == nil {
		return nil
	}
	p := &corsv3.CorsPolicy{
		AllowMethods:  strings.Join(c.AllowMethods, ","),
		AllowHeaders:  strings.Join(c.AllowHeaders, ","),
		ExposeHeaders: strings.Join(c.ExposeHeaders, ","),
	}
	for _, o := range c.AllowOrigins {
		p.AllowOriginStringMatch = append(p.AllowOriginStringMatch, stringMatcher(o))
	}
	if c.MaxAge > 0 {
		p.MaxAge = strconv.FormatInt(int64(c.MaxAge.Seconds()), 10)
	}
	if c.AllowCredentials != nil {
		p.AllowCredentials = wrapperspb.Bool(*c.AllowCredentials)
	}
	return map[string]*anypb.Any{CORSFilter: toAny(&routev3.FilterConfig{Config: toAny(p), IsOptional: true})}
}

// hashPolicies is what a consistent-hash release hashes on. grpc-go
// honours the header policy and skips the others (it then hashes each RPC
// at random).
func (t *translator) hashPolicies() []*routev3.RouteAction_HashPolicy {
	lb := t.r.LoadBalancer
	if lb == nil || lb.Hash == nil {
		return nil
	}
	h := lb.Hash
	var p *routev3.RouteAction_HashPolicy
	switch {
	case h.Cookie != nil:
		c := &routev3.RouteAction_HashPolicy_Cookie{Name: h.Cookie.Name, Path: h.Cookie.Path}
		if h.Cookie.TTL != nil {
			c.Ttl = durationpb.New(*h.Cookie.TTL)
		}
		p = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: c}}
	case h.Header != "":
		p = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: strings.ToLower(h.Header)}}}
	case h.QueryParameter != "":
		p = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
			QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: h.QueryParameter}}}
	default:
		p = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}
	}
	return []*routev3.RouteAction_HashPolicy{p}
}

// sessionCookie is the Set-Cookie of the default route. The cookie's name
// and value come from the metadata of the host that served the request
// (endpoints carry MetadataCookie under session affinity), so a stable
// pod sets PrimaryCookieName when there is one and a canary pod
// CookieName; the value is the pod's revision either way.
func sessionCookie(sa *model.SessionAffinity) string {
	maxAge := sa.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultCookieMaxAge
	}
	path := sa.Path
	if path == "" {
		path = "/"
	}
	attrs := []string{upstreamCookie, "Path=" + path}
	if sa.Domain != "" {
		attrs = append(attrs, "Domain="+sa.Domain)
	}
	attrs = append(attrs, fmt.Sprintf("Max-Age=%d", int64(maxAge.Seconds())))
	if sa.SameSite != "" {
		attrs = append(attrs, "SameSite="+sa.SameSite)
	}
	if sa.HTTPOnly {
		attrs = append(attrs, "HttpOnly")
	}
	if sa.Secure {
		attrs = append(attrs, "Secure")
	}
	if sa.Partitioned {
		attrs = append(attrs, "Partitioned")
	}
	return strings.Join(attrs, "; ")
}

// cookieMetadata is the "name=revision" cookie an endpoint of track
// serves under session affinity.
func (t *translator) cookieMetadata(track v1alpha1.Track, revision string) string {
	sa := t.r.SessionAffinity
	if sa == nil || revision == "" {
		return ""
	}
	return sa.CookieNameOf(track) + "=" + revision
}

// extraMatch adds the method pattern, authority, scheme, case and
// withoutHeaders conditions of an A/B match to its route match.
func extraMatch(rm *routev3.RouteMatch, m model.RequestMatch) {
	if m.MethodPattern != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":method", *m.MethodPattern))
	}
	if m.Authority != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":authority", *m.Authority))
	}
	if m.Scheme != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":scheme", *m.Scheme))
	}
	for _, h := range m.WithoutHeaders {
		hm := headerMatcher(strings.ToLower(h.Name), h)
		hm.InvertMatch = true
		rm.Headers = append(rm.Headers, hm)
	}
	if m.IgnoreURICase {
		// case_sensitive covers path and prefix; a regex needs its own flag.
		rm.CaseSensitive = wrapperspb.Bool(false)
		if re, ok := rm.PathSpecifier.(*routev3.RouteMatch_SafeRegex); ok {
			re.SafeRegex = &matcherv3.RegexMatcher{Regex: "(?i)" + re.SafeRegex.GetRegex()}
		}
	}
}

// matchRouteName is the route name of A/B match i, with the match's own
// name (Istio's match name, seen in access logs) when it has one.
func matchRouteName(i int, m model.RequestMatch) string {
	if m.Name == "" {
		return fmt.Sprintf("%s%d", MatchRoutePrefix, i)
	}
	return fmt.Sprintf("%s%d-%s", MatchRoutePrefix, i, m.Name)
}
