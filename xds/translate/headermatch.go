package translate

//lint:file-ignore SA1019 HeaderMatcher's older fields are the ones every xDS client reads (see headerMatcher)

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/serin-dev/serin/xds/model"
)

// headerMatcher is a header condition in HeaderMatcher's own fields
// (exact_match, prefix_match, suffix_match, safe_regex_match,
// present_match), not in string_match: gRPC C-core reads string_match only
// in releases newer than 1.51 (Debian 12's python3-grpcio) and NACKs the
// whole RouteConfiguration before ("Invalid route header matcher
// specified"), while grpc-go and Envoy read both spellings.
func headerMatcher(name string, s model.StringMatch) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: name}
	switch {
	case s.Present:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	case s.Exact != "":
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_ExactMatch{ExactMatch: s.Exact}
	case s.Prefix != "":
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: s.Prefix}
	case s.Suffix != "":
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_SuffixMatch{SuffixMatch: s.Suffix}
	default:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: s.Regex}}
	}
	return hm
}
