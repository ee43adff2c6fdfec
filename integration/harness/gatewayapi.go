package harness

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

// InstallGatewayAPICRDs applies the standard-channel Gateway and HTTPRoute
// CRDs of sigs.k8s.io/gateway-api (the version in serin's go.mod).
func InstallGatewayAPICRDs(t testing.TB, c *cluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := cluster.ModuleDir("sigs.k8s.io/gateway-api")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"gateways", "httproutes"} {
		path := filepath.Join(dir, "config", "crd", "standard", "gateway.networking.k8s.io_"+kind+".yaml")
		if _, err := c.Kubectl(ctx, "", "apply", "--server-side", "--force-conflicts", "-f", path); err != nil {
			t.Fatalf("install Gateway API CRD %s: %v", kind, err)
		}
		if _, err := c.Kubectl(ctx, "", "wait", "--for=condition=Established", "--timeout=60s", "crd/"+kind+".gateway.networking.k8s.io"); err != nil {
			t.Fatal(err)
		}
	}
}
