// Package golden is serin's golden-file testing: read YAML cases strictly
// (testdata/in), compare output with testdata/out, rewrite it with
// -update, and prune outputs whose input is gone. The xds packages' tests
// use it, and so do the integration tests that take the same inputs.
package golden

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// ReadCase decodes one YAML case file into a T; unknown fields are errors,
// so a misspelt key never silently drops a part of a case.
func ReadCase[T any](t testing.TB, path string) T {
	t.Helper()
	var c T
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// Cases reads every testdata/in/*.yaml into a T, by case name.
func Cases[T any](t testing.TB) map[string]T {
	t.Helper()
	return ReadCases[T](t, filepath.Join("testdata", "in"))
}

// ReadCases decodes each <dir>/*.yaml into a T, strictly, and returns them
// by case name: the file name without .yaml. A dir without cases fails the
// test.
func ReadCases[T any](t testing.TB, dir string) map[string]T {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cases in %s: %v", dir, err)
	}
	out := make(map[string]T, len(paths))
	for _, p := range paths {
		out[strings.TrimSuffix(filepath.Base(p), ".yaml")] = ReadCase[T](t, p)
	}
	return out
}

// Check compares got with the file at path, or writes it when update is
// set.
func Check(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run with -update and review the diff):\n%s", path, Diff(string(want), string(got)))
	}
}

// Prune reports (or, with update, removes) the files matching glob that no
// case wrote.
func Prune(t testing.TB, glob string, written map[string]bool, update bool) {
	t.Helper()
	outs, err := filepath.Glob(glob)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range outs {
		switch {
		case written[out]:
		case update:
			if err := os.Remove(out); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("%s has no input in testdata/in (run with -update to prune it)", out)
		}
	}
}

// Diff shows the first 20 differing lines of two texts.
func Diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n- %s\n+ %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
