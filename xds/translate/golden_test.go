package translate

import (
	"encoding/json"
	"flag"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/xds/model"

	"github.com/serin-dev/serin/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/out from the current translator and prune stale files")

// goldenCase is one testdata/in/<case>.yaml: a release and, optionally,
// the options to translate it with.
type goldenCase struct {
	Release model.Release `yaml:"release"`
	Options Options       `yaml:"options,omitempty"`
}

func readCase(t testing.TB, path string) goldenCase { return golden.ReadCase[goldenCase](t, path) }

// toYAML renders messages as a YAML list: protojson (with proto field
// names) re-decoded into plain values, then sigs.k8s.io/yaml, which sorts
// keys. protojson's deliberately unstable whitespace never reaches the file.
func toYAML[M proto.Message](t testing.TB, msgs []M) []byte {
	t.Helper()
	list := make([]any, 0, len(msgs))
	for _, m := range msgs {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		list = append(list, v)
	}
	out, err := sigsyaml.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no golden inputs in testdata/in")
	}
	written := map[string]bool{}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			c := readCase(t, in)
			res, err := Translate(&c.Release, c.Options)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			outputs := map[string][]byte{
				"clusters":  toYAML(t, res.Clusters),
				"endpoints": toYAML(t, res.Endpoints),
				"routes":    toYAML(t, res.Routes),
				"listeners": toYAML(t, res.Listeners),
			}
			for kind, got := range outputs {
				path := filepath.Join("testdata", "out", name+"."+kind+".yaml")
				written[path] = true
				golden.Check(t, path, got, *update)
			}
		})
	}
	golden.Prune(t, filepath.Join("testdata", "out", "*.yaml"), written, *update)
}

// TestGoldenDeterministic translates every case twice and compares the
// wire bytes, which is what version hashes downstream are computed from.
func TestGoldenDeterministic(t *testing.T) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	for _, in := range inputs {
		c := readCase(t, in)
		a, err := Translate(&c.Release, c.Options)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Translate(&c.Release, c.Options)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(wireBytes(t, a), wireBytes(t, b)) {
			t.Errorf("%s: two translations differ on the wire", in)
		}
	}
}

func wireBytes(t *testing.T, res *Resources) []string {
	t.Helper()
	var out []string
	add := func(m proto.Message) {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	for _, m := range res.Clusters {
		add(m)
	}
	for _, m := range res.Endpoints {
		add(m)
	}
	for _, m := range res.Routes {
		add(m)
	}
	for _, m := range res.Listeners {
		add(m)
	}
	return out
}
