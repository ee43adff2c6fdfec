package istiocheck

import (
	"strings"
	"testing"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/config/validation/envoyfilter"
)

// TestIstioValidatesEnvoyFilters is check (a): Istio's own EnvoyFilter
// validation, on the objects as they travel (YAML), accepts every rendered
// EnvoyFilter with no warning beyond the one every EnvoyFilter gets.
func TestIstioValidatesEnvoyFilters(t *testing.T) {
	for name, c := range loadCases(t) {
		t.Run(name, func(t *testing.T) {
			configs, _, err := crd.ParseInputs(envoyFilterYAML(t, c))
			if err != nil {
				t.Fatalf("Istio cannot parse the rendered YAML: %v", err)
			}
			if len(configs) == 0 {
				t.Fatal("no object parsed")
			}
			for _, cfg := range configs {
				if cfg.GroupVersionKind != gvk.EnvoyFilter {
					t.Fatalf("parsed a %v", cfg.GroupVersionKind)
				}
				warn, err := envoyfilter.ValidateEnvoyFilter(cfg)
				if err != nil {
					t.Errorf("%s: Istio rejects it: %v", cfg.Name, err)
				}
				if warn != nil {
					// One warning is the message itself; several are listed
					// under "N errors occurred:" as "\t* <warning>" lines.
					for _, w := range strings.Split(warn.Error(), "\n") {
						w = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(w), "* "))
						if w == "" || strings.HasSuffix(w, "errors occurred:") ||
							strings.Contains(w, "EnvoyFilter exposes internal implementation details") {
							continue
						}
						t.Errorf("%s: Istio warns: %s", cfg.Name, w)
					}
				}
			}
		})
	}
}
