package harness

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

// InstallGatewayAPICRDs applies the standard-channel CRDs of
// sigs.k8s.io/gateway-api (the version in serin's go.mod): Gateways and
// every route kind, as a cluster with Gateway API installed has them.
func InstallGatewayAPICRDs(t testing.TB, c *cluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := cluster.ModuleDir("sigs.k8s.io/gateway-api")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"gatewayclasses", "gateways", "httproutes", "grpcroutes", "tcproutes", "tlsroutes", "udproutes", "referencegrants", "backendtlspolicies", "listenersets"} {
		applyCRDs(ctx, t, c, filepath.Join(dir, "config", "crd", "standard", "gateway.networking.k8s.io_"+kind+".yaml"), kind+".gateway.networking.k8s.io")
	}
}

// applyCRDs applies the CRDs in the file at path and waits until the named
// ones are established.
func applyCRDs(ctx context.Context, t testing.TB, c *cluster.Cluster, path string, names ...string) {
	t.Helper()
	if _, err := c.Kubectl(ctx, "", "apply", "--server-side", "--force-conflicts", "-f", path); err != nil {
		t.Fatalf("install CRDs from %s: %v", filepath.Base(path), err)
	}
	for _, name := range names {
		// kubectl wait fails at once, rather than waiting, on a CRD the API
		// server has not given conditions yet: ask again until the deadline.
		deadline := time.Now().Add(time.Minute)
		for {
			_, err := c.Kubectl(ctx, "", "wait", "--for=condition=Established", "--timeout=60s", "crd/"+name)
			if err == nil {
				break
			}
			if time.Now().After(deadline) || !strings.Contains(err.Error(), ".status.conditions accessor error") {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
