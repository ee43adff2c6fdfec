package harness

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

// InstallIstioCRDs applies the CRDs that ship in istio.io/api (the version
// in serin's go.mod) and makes Istio's root namespace.
func InstallIstioCRDs(t testing.TB, c *cluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	applyCRDs(ctx, t, c, IstioCRDPath(t), "envoyfilters.networking.istio.io", "gateways.networking.istio.io", "virtualservices.networking.istio.io")
	if _, err := c.Kubectl(ctx, "", "create", "namespace", "istio-system"); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatal(err)
	}
}

// IstioCRDPath finds Istio's CRD YAML in the module cache.
func IstioCRDPath(t testing.TB) string {
	t.Helper()
	dir, err := cluster.ModuleDir("istio.io/api")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml")
}
