// Package golden reads the YAML cases of golden-file tests (such as the
// testdata/in of xds/istio and xds/translate), so that other tests can
// take the same inputs.
package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// ReadCases decodes each <dir>/*.yaml into a T, strictly (a field T does
// not know fails the test), and returns them by case name: the file name
// without .yaml. A dir without cases fails the test.
func ReadCases[T any](t testing.TB, dir string) map[string]T {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cases in %s: %v", dir, err)
	}
	out := make(map[string]T, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var c T
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".yaml")] = c
	}
	return out
}
