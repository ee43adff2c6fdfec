package translate

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/serin-dev/serin/xds/model"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Route names, in the order the routes appear in the virtual host. The
// Istio glue relies on them: every route before DefaultRouteName is
// inserted first into Istio's table, DefaultRouteName is merged onto
// Istio's own routes.
const (
	MatchRoutePrefix  = "serin-match-"  // + index: A/B matches → canary
	StickyRoutePrefix = "serin-sticky-" // + track: session cookie → its track
	DefaultRouteName  = "serin-default" // everything else → weighted cluster
)

// DefaultCookieMaxAge is the session cookie's lifetime when the release
// sets none: Flagger's default, one day.
const DefaultCookieMaxAge = 24 * time.Hour

// Retry conditions used when the release does not name its own. For HTTP,
// Istio's defaults; for gRPC, the codes grpc-go knows how to retry plus the
// connection-level conditions Envoy understands.
const (
	defaultHTTPRetryOn = "gateway-error,connect-failure,refused-stream"
	defaultGRPCRetryOn = "connect-failure,refused-stream,unavailable,cancelled,resource-exhausted"
)

// upstreamCookie is the header formatter that reads the serin.cookie
// metadata (name=revision) of the host that served the request. Envoy 1.36 deprecated the
// JSON-array spelling %UPSTREAM_METADATA(["serin","revision"])% in route
// headers (runtime guard envoy.reloadable_features.remove_legacy_route_formatter);
// the colon form is what the substitution formatter parses natively, and
// older Envoys pass it through unchanged.
const upstreamCookie = "%UPSTREAM_METADATA(" + MetadataNamespace + ":" + MetadataCookie + ")%"

func (t *translator) routeConfiguration() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: t.r.RouteName(),
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    t.r.ClusterName(),
			Domains: t.domains(),
			Routes:  t.routes(),
		}},
	}
}

// domains are each host, bare and with the port, sorted. Proxyless gRPC
// clients look the virtual host up by "host:port", Envoy by the Host header.
func (t *translator) domains() []string {
	var out []string
	for _, h := range t.r.EffectiveHosts() {
		out = append(out, h, fmt.Sprintf("%s:%d", h, t.r.Port))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// routes are, in order: the A/B matches (to canary), the sticky-session
// routes (to the track named by the cookie), and the default route (to the
// weighted cluster), each narrowed to the service's matches. The first
// match wins.
func (t *translator) routes() []*routev3.Route {
	return t.narrow(t.releaseRoutes())
}

func (t *translator) releaseRoutes() []*routev3.Route {
	var out []*routev3.Route
	canary := t.r.TrackClusterName(v1alpha1.TrackCanary)
	for i, m := range t.r.Match {
		out = append(out, t.route(matchRouteName(i, m), abMatch(m), canary))
	}
	if sa := t.r.SessionAffinity; sa != nil {
		seen := map[string]bool{}
		for _, track := range []v1alpha1.Track{v1alpha1.TrackStable, v1alpha1.TrackCanary} {
			rev := t.r.Track(track).Revision
			// A cookie only pins to a track that still takes default
			// traffic: once a track is at weight 0 (rolled back, or fully
			// shifted) its clients fall through to the weighted route and
			// get a new cookie.
			if rev == "" || t.weight(track) == 0 || seen[rev] {
				continue
			}
			seen[rev] = true
			out = append(out, t.route(StickyRoutePrefix+string(track), cookieMatch(sa.CookieNameOf(track), rev), t.r.TrackClusterName(track)))
		}
	}
	def := t.route(DefaultRouteName, &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, t.r.ClusterName())
	if m := t.r.Mirror; m != nil {
		def.GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{
			Cluster: canary,
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
				Numerator:   m.Percent,
				Denominator: typev3.FractionalPercent_HUNDRED,
			}},
		}}
	}
	if sa := t.r.SessionAffinity; sa != nil {
		def.ResponseHeadersToAdd = append(def.ResponseHeadersToAdd, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: "set-cookie", Value: sessionCookie(sa)},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return append(out, def)
}

// route builds one route with the release-wide policies (timeout, retries,
// rewrite, headers), which apply to every route alike.
func (t *translator) route(name string, match *routev3.RouteMatch, cluster string) *routev3.Route {
	a := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}
	if d := t.r.Timeout; d > 0 {
		a.Timeout = durationpb.New(d)
		if t.r.Protocol == model.GRPC {
			// grpc-go ignores timeout and honours max_stream_duration.
			a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(d)}
		}
	}
	if rp := t.r.Retries; rp != nil {
		retryOn := rp.RetryOn
		if retryOn == "" {
			retryOn = defaultHTTPRetryOn
			if t.r.Protocol == model.GRPC {
				retryOn = defaultGRPCRetryOn
			}
		}
		a.RetryPolicy = &routev3.RetryPolicy{RetryOn: retryOn, NumRetries: wrapperspb.UInt32(rp.Attempts)}
		if rp.PerTryTimeout > 0 {
			a.RetryPolicy.PerTryTimeout = durationpb.New(rp.PerTryTimeout)
		}
	}
	if rw := t.r.Rewrite; rw != nil {
		a.PrefixRewrite = rw.URI
		if rw.Authority != "" {
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Authority}
		}
	}
	a.HashPolicy = t.hashPolicies()
	r := &routev3.Route{Name: name, Match: match, Action: &routev3.Route_Route{Route: a}, TypedPerFilterConfig: t.perFilterConfig()}
	if h := t.r.Headers; h != nil {
		r.RequestHeadersToAdd = headerOptions(h.RequestAdd)
		r.RequestHeadersToRemove = slices.Clone(h.RequestRemove)
		r.ResponseHeadersToAdd = headerOptions(h.ResponseAdd)
		r.ResponseHeadersToRemove = slices.Clone(h.ResponseRemove)
	}
	return r
}

// headerOptions appends the given headers, sorted by name. Values are
// literal: a % is escaped so Envoy's formatter does not read it as a
// command.
func headerOptions(add map[string]string) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, k := range slices.Sorted(maps.Keys(add)) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: strings.ReplaceAll(add[k], "%", "%%")},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

// abMatch turns one A/B match into a route match; its conditions are ANDed.
func abMatch(m model.RequestMatch) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if u := m.URI; u != nil {
		switch {
		case u.Exact != "":
			rm.PathSpecifier = &routev3.RouteMatch_Path{Path: u.Exact}
		case u.Prefix != "":
			rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: u.Prefix}
		case u.Regex != "":
			rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: u.Regex}}
		case u.Suffix != "":
			rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".*" + regexp.QuoteMeta(u.Suffix)}}
		}
	}
	for _, h := range m.Headers {
		rm.Headers = append(rm.Headers, headerMatcher(strings.ToLower(h.Name), h))
	}
	if m.Method != "" {
		rm.Headers = append(rm.Headers, headerMatcher(":method", model.StringMatch{Exact: m.Method}))
	}
	for _, q := range m.QueryParams {
		qm := &routev3.QueryParameterMatcher{Name: q.Name}
		if q.Present {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		} else {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(q)}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	extraMatch(rm, m)
	return rm
}

// stringMatcher converts a model match (not Present, which has no
// StringMatcher form).
func stringMatcher(s model.StringMatch) *matcherv3.StringMatcher {
	switch {
	case s.Exact != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s.Exact}}
	case s.Prefix != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s.Prefix}}
	case s.Suffix != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s.Suffix}}
	default:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s.Regex}}}
	}
}

// cookieMatch matches a Cookie header that carries name=value among any
// other cookies. Envoy and grpc-go match safe_regex against the whole
// value, hence the optional prefix and suffix; HTTP/2 cookie crumbs are
// joined with "; " by Envoy before matching.
func cookieMatch(name, value string) *routev3.RouteMatch {
	re := `(?:.*;\s*)?` + regexp.QuoteMeta(name) + "=" + regexp.QuoteMeta(value) + `(?:\s*;.*)?`
	return &routev3.RouteMatch{
		PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
		Headers:       []*routev3.HeaderMatcher{headerMatcher("cookie", model.StringMatch{Regex: re})},
	}
}
