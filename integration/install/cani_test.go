package install

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

// canI is one `kubectl auth can-i` question and the answer serin's
// service account must get.
type canI struct {
	args []string // verb, resource[/name], and -n or -A
	want bool
}

// TestServiceAccountCanI applies the RBAC the chart renders in each mode
// to the real API server and asks it, as serin's service account, what
// serin may do: what serin needs is allowed, and writes outside its mode
// (ConfigMaps and Secrets without config tracking, EnvoyFilters with Istio
// off, Deployments outside the watched namespaces) are not.
func TestServiceAccountCanI(t *testing.T) {
	c := cluster.Get(t)
	// kubectl names the resources it asks about from discovery.
	harness.InstallIstioCRDs(t, c)
	installSerinCRDs(t, c)
	teamA, teamB, other := c.Namespace(t), c.Namespace(t), c.Namespace(t)
	for _, tt := range []struct {
		name   string
		sets   []string
		checks func(ns, name string) []canI
	}{
		{"default", nil, func(ns, name string) []canI {
			return []canI{
				// Config tracking: tracked objects are read, snapshots
				// written beside them, missed pods made again.
				{[]string{"get", "configmaps", "-n", teamA}, true},
				{[]string{"create", "secrets", "-n", teamB}, true},
				{[]string{"delete", "pods", "-n", teamA}, true},
				{[]string{"patch", "envoyfilters.networking.istio.io", "-A"}, false},
				{[]string{"patch", "namespaces"}, false},
				{[]string{"list", "namespaces"}, true}, // host grants live on them
				{[]string{"create", "deployments.apps", "-n", teamA}, true},
				{[]string{"create", "services", "-n", other}, true},
				{[]string{"create", "horizontalpodautoscalers.autoscaling", "-n", teamB}, true},
				{[]string{"watch", "pods", "-A"}, true},
				{[]string{"patch", "canaries.serin.dev", "--subresource=status", "-n", teamA}, true},
				{[]string{"create", "events.events.k8s.io", "-n", teamA}, true},
				{[]string{"patch", "mutatingwebhookconfigurations/" + name}, true},
				{[]string{"patch", "mutatingwebhookconfigurations/other"}, false},
				{[]string{"update", "secrets/" + name + "-webhook-tls", "-n", ns}, true},
				{[]string{"update", "leases.coordination.k8s.io", "-n", ns}, true},
			}
		}},
		{"no-config-tracking", []string{"controller.configTracking=false"}, func(ns, name string) []canI {
			return []canI{
				{[]string{"create", "configmaps", "-n", "kube-system"}, false},
				{[]string{"patch", "configmaps", "-n", teamA}, false},
				{[]string{"get", "secrets", "-n", "kube-system"}, false},
				{[]string{"list", "secrets", "-A"}, false},
				{[]string{"delete", "pods", "-n", teamA}, false},
				{[]string{"update", "secrets/" + name + "-webhook-tls", "-n", ns}, true},
			}
		}},
		{"istio-bootstrap", []string{"istio.mode=bootstrap", "istio.bootstrap.namespaces={" + teamA + "}", "controller.configTracking=false"}, func(string, string) []canI {
			return []canI{
				{[]string{"patch", "envoyfilters.networking.istio.io", "-A"}, true},
				{[]string{"create", "configmaps/serin-xds-bootstrap", "-n", teamA}, true},
				{[]string{"patch", "configmaps/serin-xds-bootstrap", "-n", teamA}, true},
				{[]string{"create", "configmaps/serin-xds-bootstrap", "-n", "kube-system"}, false},
				{[]string{"create", "configmaps/serin-xds-bootstrap", "-n", teamB}, false},
				{[]string{"patch", "configmaps/kube-root-ca.crt", "-n", teamA}, false},
				{[]string{"list", "configmaps", "-n", teamA}, false},
			}
		}},
		{"istio-google-grpc", []string{"istio.mode=google-grpc", "controller.configTracking=false"}, func(string, string) []canI {
			return []canI{
				{[]string{"patch", "envoyfilters.networking.istio.io", "-A"}, true},
				{[]string{"create", "configmaps/serin-xds-bootstrap", "-n", teamA}, false},
			}
		}},
		{"watch-namespaces", []string{"watchNamespaces={" + teamA + "," + teamB + "}"}, func(ns, name string) []canI {
			return []canI{
				{[]string{"create", "deployments.apps", "-n", teamA}, true},
				{[]string{"watch", "pods", "-n", teamB}, true},
				{[]string{"patch", "canaries.serin.dev", "--subresource=status", "-n", teamB}, true},
				{[]string{"create", "events.events.k8s.io", "-n", ns}, true},
				{[]string{"patch", "validatingwebhookconfigurations/" + name}, true},
				{[]string{"create", "deployments.apps", "-n", other}, false},
				{[]string{"create", "services", "-n", other}, false},
				{[]string{"list", "deployments.apps", "-A"}, false},
				{[]string{"list", "pods", "-A"}, false},
				{[]string{"list", "canaries.serin.dev", "-A"}, false},
				{[]string{"get", "secrets", "-n", teamA}, true},
				{[]string{"get", "secrets", "-n", other}, false},
				{[]string{"create", "configmaps", "-n", other}, false},
				{[]string{"patch", "envoyfilters.networking.istio.io", "-n", teamA}, false},
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := c.Namespace(t)
			release := "rbac-" + tt.name
			applyRBAC(t, c, release, ns, tt.sets)
			name := release + "-serin"
			sa := fmt.Sprintf("system:serviceaccount:%s:%s", ns, name)
			for _, q := range tt.checks(ns, name) {
				if got := ask(t, c, sa, q.args); got != q.want {
					t.Errorf("can-i %s as %s: %t, want %t", strings.Join(q.args, " "), sa, got, q.want)
				}
			}
		})
	}
}

// applyRBAC renders the chart as release in ns with sets and applies its
// service account, roles and bindings (hooks left out); the cluster-wide
// ones are deleted when the test ends.
func applyRBAC(t *testing.T, c *cluster.Cluster, release, ns string, sets []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"template", release, filepath.Join(repo(t), "charts", "serin"), "--namespace", ns}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := run(ctx, "", tool(t, "helm"), args...)
	if err != nil {
		t.Fatal(err)
	}
	var keep objects
	for _, u := range decode(t, out) {
		if _, hook := u.GetAnnotations()["helm.sh/hook"]; !hook && slices.Contains(rbacKinds, u.GetKind()) {
			keep = append(keep, u)
		}
	}
	docs := make([]string, 0, len(keep))
	for _, u := range keep {
		b, err := u.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	if _, err := c.Kubectl(ctx, strings.Join(docs, "\n---\n"), "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatalf("apply RBAC: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		name := release + "-serin"
		_, _ = c.Kubectl(ctx, "", "delete", "clusterrole,clusterrolebinding", name, "--ignore-not-found")
	})
}

// installSerinCRDs applies the chart's CRDs, as `helm install` does, and
// waits until they are served.
func installSerinCRDs(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Kubectl(ctx, "", "apply", "--server-side", "-f", filepath.Join(repo(t), "charts", "serin", "crds")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kubectl(ctx, "", "wait", "--for=condition=Established", "crd/canaries.serin.dev", "--timeout=1m"); err != nil {
		t.Fatal(err)
	}
}

// ask is the API server's answer to `kubectl auth can-i args` as user.
func ask(t *testing.T, c *cluster.Cluster, user string, args []string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.Kubectl(ctx, "", append([]string{"auth", "can-i", "--as=" + user}, args...)...)
	switch strings.TrimSpace(out) {
	case "yes":
		return true
	case "no":
		return false
	}
	t.Fatalf("can-i %v: %q, %v", args, out, err)
	return false
}
