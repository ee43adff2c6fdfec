package istiocheck

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"

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
	paths, err := filepath.Glob(filepath.Join(casesDir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cases in %s: %v", casesDir, err)
	}
	out := map[string]testCase{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var c testCase
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".yaml")] = c
	}
	return out
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
