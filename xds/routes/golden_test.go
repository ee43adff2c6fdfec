package routes

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/golden"
	"github.com/serin-dev/serin/xds/model"
)

var update = flag.Bool("update", false, "rewrite testdata/out from the current renderer and prune stale files")

// testCase is one testdata/in/<case>.yaml.
type testCase struct {
	Release model.Release   `yaml:"release"`
	Router  v1alpha1.Router `yaml:"router"`
}

// TestGolden pins the rendered route objects: testdata/out/<case>.yaml is
// the object exactly as serin applies it.
func TestGolden(t *testing.T) {
	written := map[string]bool{}
	for name, c := range golden.Cases[testCase](t) {
		t.Run(name, func(t *testing.T) {
			obj, err := Render(&c.Release, c.Router)
			if err != nil {
				t.Fatal(err)
			}
			got, err := sigsyaml.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "out", name+".yaml")
			written[path] = true
			golden.Check(t, path, got, *update)
		})
	}
	golden.Prune(t, filepath.Join("testdata", "out", "*.yaml"), written, *update)
}

// TestUnsupported: a condition Gateway API cannot express is an error
// that names it, never a route that matches more than the user asked.
func TestUnsupported(t *testing.T) {
	base := model.Release{Namespace: "test", Service: "podinfo", Port: 9898, Protocol: model.HTTP, CanaryWeight: 10}
	for name, tc := range map[string]struct {
		mut  func(r *model.Release)
		want string
	}{
		"authority": {func(r *model.Release) { r.Match = []model.RequestMatch{{Authority: &model.StringMatch{Exact: "a"}}} }, "analysis.match: a Gateway API route cannot match authority"},
		"scheme": {func(r *model.Release) {
			r.ServiceMatch = []model.RequestMatch{{Scheme: &model.StringMatch{Exact: "https"}}}
		}, "service.match: a Gateway API route cannot match scheme"},
		"method": {func(r *model.Release) { r.Match = []model.RequestMatch{{Method: "PURGE"}} }, `cannot match the method "PURGE"`},
		"grpc uri": {func(r *model.Release) {
			r.Protocol = model.GRPC
			r.Match = []model.RequestMatch{{URI: &model.StringMatch{Prefix: "/grpc.testing"}}}
		}, "analysis.match: a GRPCRoute matches headers only"},
		"rewrite": {func(r *model.Release) {
			r.Rewrite = &model.Rewrite{URI: "/v2"}
			r.ServiceMatch = []model.RequestMatch{{URI: &model.StringMatch{Exact: "/api"}}}
		}, "service.rewrite.uri"},
	} {
		t.Run(name, func(t *testing.T) {
			r := base
			tc.mut(&r)
			_, err := Render(&r, v1alpha1.RouterGatewayAPI)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := Render(&base, v1alpha1.RouterXDS); err == nil {
		t.Fatal("serin's xDS router has no route object")
	}
}
