package istio

import (
	"bytes"
	"flag"
	"path/filepath"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/xds/model"
	"github.com/serin-dev/serin/xds/translate"

	"github.com/serin-dev/serin/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/out from the current renderer and prune stale files")

// testCase is one testdata/in/<case>.yaml.
type testCase struct {
	Release model.Release `yaml:"release"`
	Options Options       `yaml:"options"`
}

func cases(t *testing.T) map[string]testCase { return golden.Cases[testCase](t) }

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
