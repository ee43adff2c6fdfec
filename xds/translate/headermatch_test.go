package translate

import (
	"path/filepath"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// TestHeaderMatchersWithoutStringMatch checks that no route of any golden
// case spells a header condition as string_match, which gRPC C-core 1.51
// does not read: it NACKs the whole RouteConfiguration.
func TestHeaderMatchersWithoutStringMatch(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".yaml"), func(t *testing.T) {
			c := readCase(t, in)
			res, err := Translate(&c.Release, c.Options)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			for _, rc := range res.Routes {
				for _, vh := range rc.GetVirtualHosts() {
					for _, r := range vh.GetRoutes() {
						for i, h := range r.GetMatch().GetHeaders() {
							if _, ok := h.GetHeaderMatchSpecifier().(*routev3.HeaderMatcher_StringMatch); ok {
								t.Errorf("route %q of %s: header matcher %d (%s) uses string_match", r.GetName(), rc.GetName(), i, h.GetName())
							}
						}
					}
				}
			}
		})
	}
}
