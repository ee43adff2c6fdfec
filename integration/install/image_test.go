package install

import (
	"context"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// TestChartImageDigest: with controller.image.digest (what `make image`
// prints) the Deployment pulls repository@digest, the tag ignored; a value
// that is not a sha256 digest is refused by the chart's schema.
func TestChartImageDigest(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	objs := decode(t, helmTemplate(t, "serin-system", false, "controller.image.repository=registry.example/serin",
		"controller.image.tag=v9", "controller.image.digest="+digest))
	got := as[appsv1.Deployment](t, objs.get("Deployment", "serin")).Spec.Template.Spec.Containers[0].Image
	if want := "registry.example/serin@" + digest; got != want {
		t.Errorf("image %q, want %q", got, want)
	}
	if _, err := run(context.Background(), "", tool(t, "helm"), "template", "serin", filepath.Join(repo(t), "charts", "serin"),
		"--set", "controller.image.digest=latest"); err == nil {
		t.Error("a digest that is no sha256 digest was accepted")
	}
}
