package istio

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/xds/model"
	"github.com/serin-dev/serin/xds/translate"

	"github.com/serin-dev/serin/xds/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/out from the current renderer and prune stale files")

// testCase is one testdata/in/<case>.yaml.
type testCase struct {
	Release model.Release `yaml:"release"`
	Options Options       `yaml:"options"`
}

func readCase(t *testing.T, path string) testCase {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c testCase
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func cases(t *testing.T) map[string]testCase {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cases in testdata/in: %v", err)
	}
	out := map[string]testCase{}
	for _, p := range paths {
		out[strings.TrimSuffix(filepath.Base(p), ".yaml")] = readCase(t, p)
	}
	return out
}

// TestGolden pins the rendered objects: testdata/out/<case>.yaml holds the
// EnvoyFilters (and, in bootstrap-override mode, the ConfigMap of the
// release's namespace) exactly as they would be applied.
func TestGolden(t *testing.T) {
	written := map[string]bool{}
	for name, c := range cases(t) {
		t.Run(name, func(t *testing.T) {
			efs, err := RenderEnvoyFilters(&c.Release, c.Options)
			if err != nil {
				t.Fatal(err)
			}
			var docs [][]byte
			for _, ef := range efs {
				b, err := sigsyaml.Marshal(ef)
				if err != nil {
					t.Fatal(err)
				}
				docs = append(docs, b)
			}
			if c.Options.Translate.Source.Kind == translate.SourceStaticCluster {
				cm, err := RenderBootstrapOverride(c.Release.Namespace, c.Options)
				if err != nil {
					t.Fatal(err)
				}
				b, err := sigsyaml.Marshal(cm)
				if err != nil {
					t.Fatal(err)
				}
				docs = append(docs, b)
			}
			got := bytes.Join(docs, []byte("---\n"))
			path := filepath.Join("testdata", "out", name+".yaml")
			written[path] = true
			golden.Check(t, path, got, *update)
		})
	}
	golden.Prune(t, filepath.Join("testdata", "out", "*.yaml"), written, *update)
}
