package istiocheck

import (
	"path/filepath"
	"strings"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/internal/golden"
	"github.com/serin-dev/serin/xds/istio"
	"github.com/serin-dev/serin/xds/model"
)

// casesDir is xds/istio's golden inputs: the same releases are checked
// here against Istio's code.
var casesDir = filepath.Join("..", "..", "xds", "istio", "testdata", "in")

type testCase struct {
	Release model.Release `yaml:"release"`
	Options istio.Options `yaml:"options"`
}

func loadCases(t *testing.T) map[string]testCase {
	t.Helper()
	return golden.ReadCases[testCase](t, casesDir)
}

// envoyFilterYAML renders a case's EnvoyFilters as the multi-document YAML
// that would be applied.
func envoyFilterYAML(t *testing.T, c testCase) string {
	t.Helper()
	efs, err := istio.RenderEnvoyFilters(&c.Release, c.Options)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, ef := range efs {
		b, err := sigsyaml.Marshal(ef)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	return strings.Join(docs, "---\n")
}
