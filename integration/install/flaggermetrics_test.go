package install

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// TestChartFlaggerMetrics: metrics.flaggerCompat turns on --flagger-metrics
// (off by default), and the schema takes only a boolean.
func TestChartFlaggerMetrics(t *testing.T) {
	args := func(set ...string) []string {
		dep := as[appsv1.Deployment](t, decode(t, helmTemplate(t, "serin-system", false, set...)).get("Deployment", "serin"))
		return dep.Spec.Template.Spec.Containers[0].Args
	}
	if a := args(); slices.Contains(a, "--flagger-metrics") {
		t.Errorf("--flagger-metrics by default: %v", a)
	}
	if a := args("metrics.flaggerCompat=true"); !slices.Contains(a, "--flagger-metrics") {
		t.Errorf("metrics.flaggerCompat=true: args %v lack --flagger-metrics", a)
	}
	chart := filepath.Join(repo(t), "charts", "serin")
	if out, err := run(context.Background(), "", tool(t, "helm"), "lint", "--strict", chart, "--set-string", "metrics.flaggerCompat=yes"); err == nil {
		t.Errorf("the schema accepted metrics.flaggerCompat=yes: %s", out)
	}
}
