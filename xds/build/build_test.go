package build

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/out from the current builder and prune stale files")

// TestGolden builds every testdata/in/<case>.yaml (a Canary, its target
// Deployment, the namespace's pods and Services, as Kubernetes writes them)
// and compares the model with testdata/out/<case>.yaml; a case that cannot
// be built has its error there instead.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no cases in testdata/in: %v", err)
	}
	written := map[string]bool{}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			out := filepath.Join("testdata", "out", name+".yaml")
			written[out] = true
			golden.Check(t, out, render(t, readInput(t, in)), *update)
		})
	}
	golden.Prune(t, filepath.Join("testdata", "out", "*.yaml"), written, *update)
}

// readInput decodes a case strictly, with the API's own JSON field names.
func readInput(t *testing.T, path string) Input {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var in Input
	if err := sigsyaml.UnmarshalStrict(b, &in); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if in.Canary == nil {
		t.Fatalf("%s: no canary", path)
	}
	return in
}

// render is the release as YAML, or the builder's error.
func render(t *testing.T, in Input) []byte {
	t.Helper()
	rel, err := Release(in)
	var v any = map[string]any{"release": rel}
	if err != nil {
		v = map[string]string{"error": err.Error()}
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReleaseIsPure builds the same input twice, with the pods in reverse
// order the second time: the output must not depend on list order, and the
// input must not be modified.
func TestReleaseIsPure(t *testing.T) {
	in := readInput(t, filepath.Join("testdata", "in", "weighted-http.yaml"))
	before := render(t, in)
	reversed := in
	reversed.Pods = nil
	for i := len(in.Pods) - 1; i >= 0; i-- {
		reversed.Pods = append(reversed.Pods, in.Pods[i])
	}
	if got := render(t, reversed); string(got) != string(before) {
		t.Errorf("pod order changed the release:\n%s", golden.Diff(string(before), string(got)))
	}
	if again := render(t, in); string(again) != string(before) {
		t.Error("building twice gave different releases")
	}
}
