package migrate

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/out from the current importer and prune stale files")

// TestImportGolden imports each testdata/in file on its own: serin's
// objects go to testdata/out/<case>.yaml, the notes for stderr to
// testdata/out/<case>.notes.
func TestImportGolden(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	written := map[string]bool{}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Import([]Source{{Name: in, Data: b}})
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join("testdata", "out", name)
			golden.Check(t, out+".yaml", got.YAML, *update)
			golden.Check(t, out+".notes", []byte(strings.Join(got.Notes, "\n")+"\n"), *update)
			written[out+".yaml"], written[out+".notes"] = true, true
			// The same input gives the same output.
			again, err := Import([]Source{{Name: in, Data: b}})
			if err != nil || string(again.YAML) != string(got.YAML) {
				t.Fatalf("a second import differs: %v", err)
			}
		})
	}
	golden.Prune(t, filepath.Join("testdata", "out", "*"), written, *update)
}

// TestImportRejects names the file and the field of a strict decoding
// error, and of broken YAML.
func TestImportRejects(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: a}\nspec: {targetRef: {name: a}, bogus: 1}\n", `unknown field "bogus"`},
		{"apiVersion: v1\nkind: [\n", "x.yaml"},
	} {
		_, err := Import([]Source{{Name: "x.yaml", Data: []byte(tc.in)}})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "x.yaml") {
			t.Errorf("Import(%q) = %v, want an error naming x.yaml and %q", tc.in, err, tc.want)
		}
	}
}

// TestAsAnnotations: what annotations can say they say exactly; what they
// cannot (hooks, a custom metric, no metrics at all) needs a Canary.
func TestAsAnnotations(t *testing.T) {
	min, max := 99.0, 500.0
	builtin := []v1alpha1.CanaryMetric{
		{Name: v1alpha1.MetricRequestSuccessRate, ThresholdRange: &v1alpha1.CanaryThresholdRange{Min: &min}},
		{Name: v1alpha1.MetricRequestDuration, ThresholdRange: &v1alpha1.CanaryThresholdRange{Max: &max}},
	}
	base := func() *v1alpha1.CanarySpec {
		return &v1alpha1.CanarySpec{TargetRef: v1alpha1.LocalObjectReference{Name: "web"},
			Analysis: &v1alpha1.CanaryAnalysis{Interval: "30s", StepWeight: 20, Metrics: builtin}}
	}
	if ann, ok := AsAnnotations("web", base()); !ok || ann[v1alpha1.AnnotationStepWeight] != "20" || ann[v1alpha1.AnnotationInterval] != "30s" {
		t.Fatalf("plain spec: %v %v", ann, ok)
	}
	for name, edit := range map[string]func(s *v1alpha1.CanarySpec){
		"hook": func(s *v1alpha1.CanarySpec) {
			s.Analysis.Webhooks = []v1alpha1.CanaryWebhook{{Name: "x", URL: "http://x/"}}
		},
		"no metrics":   func(s *v1alpha1.CanarySpec) { s.Analysis.Metrics = nil },
		"one metric":   func(s *v1alpha1.CanarySpec) { s.Analysis.Metrics = builtin[:1] },
		"hosts":        func(s *v1alpha1.CanarySpec) { s.Service.Hosts = []string{"a.example.com"} },
		"other target": func(s *v1alpha1.CanarySpec) { s.TargetRef.Name = "other" },
		"nginx":        func(s *v1alpha1.CanarySpec) { s.Provider = "nginx" },
		"skipAnalysis": func(s *v1alpha1.CanarySpec) { s.SkipAnalysis = true },
	} {
		s := base()
		edit(s)
		if ann, ok := AsAnnotations("web", s); ok {
			t.Errorf("%s: expressed as %v", name, ann)
		}
	}
}
