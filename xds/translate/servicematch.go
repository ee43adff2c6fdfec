package translate

import (
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/serin-dev/serin/xds/model"
)

// narrow limits routes to the service's matches (Flagger's service.match):
// each route is repeated once per service match, in order, with that
// match's conditions ANDed to its own, so the routes keep their priority
// and a request that matches no service match has no route. The copies
// keep the route's name. A copy whose conditions cannot both hold (two
// unrelated path prefixes) is left out.
func (t *translator) narrow(routes []*routev3.Route) []*routev3.Route {
	if len(t.r.ServiceMatch) == 0 {
		return routes
	}
	var out []*routev3.Route
	for _, r := range routes {
		for _, sm := range t.r.ServiceMatch {
			c := proto.Clone(r).(*routev3.Route)
			if andMatch(c.GetMatch(), abMatch(sm)) {
				out = append(out, c)
			}
		}
	}
	return out
}

// andMatch adds the conditions of src to dst and reports whether both
// can hold at once. A route match has one path condition: when both have
// one, the narrower of two nested prefixes is kept, and otherwise src's
// becomes a :path header matcher (Envoy matches the whole :path,
// query included, hence the optional query in the pattern; grpc-go does
// not match :path, so such a route never fires for it).
func andMatch(dst, src *routev3.RouteMatch) bool {
	dst.Headers = append(dst.Headers, src.GetHeaders()...)
	dst.QueryParameters = append(dst.QueryParameters, src.GetQueryParameters()...)
	switch {
	case catchAll(src):
		return true
	case catchAll(dst):
		dst.PathSpecifier, dst.CaseSensitive = src.GetPathSpecifier(), src.GetCaseSensitive()
		return true
	}
	a, b := dst.GetPrefix(), src.GetPrefix()
	if a != "" && b != "" && proto.Equal(dst.GetCaseSensitive(), src.GetCaseSensitive()) {
		switch {
		case strings.HasPrefix(a, b):
			return true
		case strings.HasPrefix(b, a):
			dst.PathSpecifier = src.GetPathSpecifier()
			return true
		case dst.GetCaseSensitive() == nil || dst.GetCaseSensitive().GetValue():
			return false
		}
	}
	dst.Headers = append(dst.Headers, pathHeader(src))
	return true
}

// catchAll is the match of every path: prefix "/".
func catchAll(m *routev3.RouteMatch) bool {
	p, ok := m.GetPathSpecifier().(*routev3.RouteMatch_Prefix)
	return ok && p.Prefix == "/"
}

// pathHeader is m's path condition as a :path header matcher.
func pathHeader(m *routev3.RouteMatch) *routev3.HeaderMatcher {
	fold := ""
	if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		fold = "(?i)"
	}
	var re string
	switch {
	case m.GetPrefix() != "":
		re = regexp.QuoteMeta(m.GetPrefix()) + ".*"
	case m.GetPath() != "":
		re = regexp.QuoteMeta(m.GetPath()) + `(?:\?.*)?`
	default:
		re = strings.TrimPrefix(m.GetSafeRegex().GetRegex(), "(?i)")
		re = "(?:" + re + `)(?:\?.*)?`
	}
	return headerMatcher(":path", model.StringMatch{Regex: fold + re})
}
