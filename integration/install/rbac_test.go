package install

import (
	"cmp"
	"flag"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/rbac/out from the chart and prune stale files")

// rbacCase is one chart mode: helm --set values.
type rbacCase struct {
	Sets []string `yaml:"sets"`
}

// rbacKinds are the objects that make up serin's permissions.
var rbacKinds = []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

// TestChartRBACGolden: the RBAC the chart renders in each mode
// (testdata/rbac/in) is the reviewed one in testdata/rbac/out; -update
// rewrites it.
func TestChartRBACGolden(t *testing.T) {
	cases := golden.ReadCases[rbacCase](t, filepath.Join("testdata", "rbac", "in"))
	written := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		out := filepath.Join("testdata", "rbac", "out", name+".yaml")
		written[out] = true
		t.Run(name, func(t *testing.T) {
			got := rbacYAML(t, decode(t, helmTemplate(t, "serin-system", false, cases[name].Sets...)))
			golden.Check(t, out, got, *update)
		})
	}
	golden.Prune(t, filepath.Join("testdata", "rbac", "out", "*.yaml"), written, *update)
}

// rbacYAML is the RBAC objects of a rendering, without labels and hook
// annotations, sorted by kind, namespace and name.
func rbacYAML(t testing.TB, objs objects) []byte {
	t.Helper()
	var sel objects
	for _, u := range objs {
		if !slices.Contains(rbacKinds, u.GetKind()) {
			continue
		}
		u = u.DeepCopy()
		u.SetLabels(nil)
		sel = append(sel, u)
	}
	slices.SortFunc(sel, func(a, b *unstructured.Unstructured) int {
		return cmp.Or(cmp.Compare(slices.Index(rbacKinds, a.GetKind()), slices.Index(rbacKinds, b.GetKind())),
			cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	docs := make([]string, 0, len(sel))
	for _, u := range sel {
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	return []byte(strings.Join(docs, "---\n"))
}
