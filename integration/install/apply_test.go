package install

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/serin-dev/serin/integration/cluster"
)

// apply runs kubectl apply on a rendering; dryRun makes it a server-side
// dry run, which still runs every validation and admission step.
func apply(ctx context.Context, t *testing.T, c *cluster.Cluster, manifests string, dryRun bool) {
	t.Helper()
	args := []string{"apply", "--server-side", "--field-manager=serin-install-test", "-f", "-"}
	if dryRun {
		args = append(args, "--dry-run=server")
	}
	out, err := c.Kubectl(ctx, manifests, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("%d objects applied (dry run %v)", strings.Count(out, "\n"), dryRun)
}

var certManagerCRDs = struct {
	once sync.Once
	err  error
}{}

// installCertManagerCRDs installs cert-manager's CRDs from the module cache
// (the cert-manager module ships them in deploy/crds) — its controllers do
// not build from the module proxy, so only the API is available.
func installCertManagerCRDs(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	certManagerCRDs.once.Do(func() {
		mod, err := cluster.ModuleDir("github.com/cert-manager/cert-manager")
		if err != nil {
			certManagerCRDs.err = fmt.Errorf("locate the cert-manager module: %w", err)
			return
		}
		dir := filepath.Join(mod, "deploy", "crds")
		var files []string
		for _, kind := range []string{"certificates", "certificaterequests", "issuers", "clusterissuers"} {
			files = append(files, "-f", filepath.Join(dir, "cert-manager.io_"+kind+".yaml"))
		}
		ctx := context.Background()
		if _, err := c.Kubectl(ctx, "", append([]string{"apply", "--server-side"}, files...)...); err != nil {
			certManagerCRDs.err = err
			return
		}
		_, certManagerCRDs.err = c.Kubectl(ctx, "", "wait", "--for=condition=Established", "--timeout=60s",
			"crd/certificates.cert-manager.io", "crd/issuers.cert-manager.io", "crd/clusterissuers.cert-manager.io", "crd/certificaterequests.cert-manager.io")
	})
	if certManagerCRDs.err != nil {
		t.Fatal(certManagerCRDs.err)
	}
}

// TestChartServerDryRun: every rendering of the chart passes the API
// server's validation and admission (webhook configurations with their CEL
// matchConditions, RBAC, the cert-manager objects against cert-manager's
// CRD schemas).
func TestChartServerDryRun(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.Namespace(t)
	for _, tc := range []struct {
		name        string
		set         []string
		certManager bool
	}{
		{name: "defaults"},
		{name: "url", set: []string{"controller.enabled=false", "webhook.url=https://127.0.0.1:9443"}},
		{name: "certManager", set: []string{"certificates.mode=certManager", "webhook.ips={127.0.0.1}", "secretNamespaces={" + ns + "}"}, certManager: true},
		{name: "certManagerIssuer", set: []string{"certificates.mode=certManager", "certificates.certManager.issuerRef.name=corp", "certificates.certManager.issuerRef.kind=ClusterIssuer"}, certManager: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.certManager {
				installCertManagerCRDs(t, c)
			}
			apply(t.Context(), t, c, helmTemplate(t, ns, true, tc.set...), true)
		})
	}
}

// TestKustomizeServerDryRun: the kustomize base and the cert-manager
// overlay pass the API server's validation and admission.
func TestKustomizeServerDryRun(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	installCertManagerCRDs(t, c)
	// Namespaced objects need their namespace to exist, even in a dry run.
	ctx := t.Context()
	if _, err := c.Kubectl(ctx, "", "create", "namespace", "serin-system"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.Kubectl(context.Background(), "", "delete", "namespace", "serin-system", "--wait=false")
	})
	for _, dir := range []string{"manifests", "manifests/certmanager"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			apply(t.Context(), t, c, kustomize(t, dir), true)
		})
	}
}
