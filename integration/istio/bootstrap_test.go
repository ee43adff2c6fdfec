// Package istio checks how proxies reach serin, on the real API server:
// Istio bootstrap-override mode (the pod webhook, the per-namespace
// ConfigMap, the EnvoyFilter of a release) and mTLS on the xDS server.
package istio

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/xds/istio"
	"github.com/serin-dev/serin/xds/model"
)

func TestMain(m *testing.M) { cluster.Main(m, cluster.Options{Nodes: 1}) }

const release = `apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: podinfo, namespace: %[1]s}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis: {interval: 1s, stepWeight: 50, maxWeight: 50}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo, namespace: %[1]s, annotations: {serin.dev/canary: enabled}}
spec:
  replicas: 1
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers: [{name: app, image: ghcr.io/stefanprodan/podinfo:6.0.0, ports: [{name: http, containerPort: 9898}]}]
`

const pod = `apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s%s}
spec:
  containers: [{name: app, image: busybox}]
`

func TestBootstrapOverrideMode(t *testing.T) {
	c := cluster.Get(t)
	harness.InstallIstioCRDs(t, c)
	istioCA := newIstioRoot(t)
	// optedIn is labelled and granted (istio.bootstrap.namespaces);
	// labelledOnly is labelled but not granted; ungranted is named to serin
	// but the chart grants it nothing, so serin must say it may not write
	// there; other is neither.
	optedIn, labelledOnly, ungranted, other := c.Namespace(t), c.Namespace(t), c.Namespace(t), c.Namespace(t)
	// Without config tracking, whose RBAC writes ConfigMaps wherever the
	// release engine works: the bootstrap ConfigMap's own boundary is what
	// this checks.
	s := harness.Install(t, c, harness.Options{
		ExtraArgs: []string{"--config-tracking=false", "--istio-mode=bootstrap", "--istio-xds-address=serin-xds.serin-system.svc:18000",
			"--istio-bootstrap-namespaces=" + optedIn + "," + ungranted, "--xds-client-ca=" + istioCA.file},
		Sets: []string{"istio.bootstrap.namespaces={" + optedIn + "}"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ns := range []string{optedIn, labelledOnly, ungranted} {
		if _, err := c.Kubectl(ctx, "", "label", "namespace", ns, "serin.dev/istio-bootstrap=enabled"); err != nil {
			t.Fatal(err)
		}
	}

	annotation := func(ns, name string) string {
		t.Helper()
		out, err := c.Kubectl(ctx, "", "get", "pod", name, "-n", ns, "-o", `jsonpath={.metadata.annotations.sidecar\.istio\.io/bootstrapOverride}`)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tt := range []struct{ ns, name, extra, want string }{
		{optedIn, "plain", "", "serin-xds-bootstrap"},
		{optedIn, "own", ", annotations: {sidecar.istio.io/bootstrapOverride: mine}", "mine"},
		{other, "elsewhere", "", ""},
		{labelledOnly, "ungranted", "", ""},
	} {
		if _, err := c.Kubectl(ctx, fmt.Sprintf(pod, tt.name, tt.ns, tt.extra), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		if got := annotation(tt.ns, tt.name); got != tt.want {
			t.Errorf("pod %s/%s: bootstrapOverride %q, want %q", tt.ns, tt.name, got, tt.want)
		}
	}

	// An earlier version wrote the release's sidecar EnvoyFilter to the
	// root namespace: serin removes it when it writes the release's own.
	rel := model.Release{Namespace: other, Service: "podinfo", Port: 9898}
	stale := fmt.Sprintf(`apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: %s
  namespace: istio-system
  labels: {%s: %s, %s: %s}
spec: {}
`, istio.EnvoyFilterName(&rel), istio.LabelManagedBy, istio.ManagedBy, istio.LabelRelease, istio.ReleaseHash(&rel))
	if _, err := c.Kubectl(ctx, stale, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}

	// A release publishes its EnvoyFilter in its own namespace (a sidecar
	// release: nothing in the root namespace), and the opted-in namespace
	// gets the bootstrap ConfigMap with the static serin-xds cluster.
	if _, err := c.Kubectl(ctx, fmt.Sprintf(release, other), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	var cm, ef, root string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		cm, _ = c.Kubectl(ctx, "", "get", "configmap", "serin-xds-bootstrap", "-n", optedIn, "-o", "json")
		ef, _ = c.Kubectl(ctx, "", "get", "envoyfilters", "-n", other, "-l", "app.kubernetes.io/managed-by=serin", "-o", "name")
		root, _ = c.Kubectl(ctx, "", "get", "envoyfilters", "-n", "istio-system", "-l", "app.kubernetes.io/managed-by=serin", "-o", "name")
		if cm != "" && strings.Contains(ef, "envoyfilter") && root == "" {
			break
		}
	}
	if !strings.Contains(ef, istio.EnvoyFilterName(&rel)) {
		t.Fatalf("no EnvoyFilter for the release in its namespace %s: %q", other, ef)
	}
	if root != "" {
		t.Errorf("EnvoyFilters left in the root namespace: %q", root)
	}
	var obj struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal([]byte(cm), &obj); err != nil {
		t.Fatalf("bootstrap ConfigMap in %s: %v (%q)", optedIn, err, cm)
	}
	boot := obj.Data["custom_bootstrap.json"]
	for _, want := range []string{`"serin-xds"`, "serin-xds.serin-system.svc", "SERIN_XDS"} {
		if !strings.Contains(boot, want) {
			t.Errorf("bootstrap override lacks %s: %s", want, boot)
		}
	}
	// The bootstrap's TLS matches serin's real CA and serving certificate,
	// and an Istio workload certificate is served its namespace's release.
	checkBootstrapTLS(ctx, t, c, s, istioCA, boot, other)
	for _, ns := range []string{other, labelledOnly, ungranted} {
		if got, _ := c.Kubectl(ctx, "", "get", "configmap", "serin-xds-bootstrap", "-n", ns, "-o", "name"); got != "" {
			t.Errorf("namespace %s, not granted, got the bootstrap ConfigMap: %q", ns, got)
		}
	}
	// Where serin may not write, it says so on the release, once, instead
	// of retrying.
	var events string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		events, _ = c.Kubectl(ctx, "", "get", "events", "-n", other, "-o", `jsonpath={.items[?(@.reason=="Forbidden")].message}`)
		if events != "" {
			break
		}
	}
	if !strings.Contains(events, ungranted) || !strings.Contains(events, "forbidden") {
		t.Errorf("no Forbidden event naming %s on the release: %q", ungranted, events)
	}
	// Deleting the release (Canary and Deployment; with the Deployment's
	// opt-in annotation left alone serin would adopt it again) removes its
	// EnvoyFilter.
	if _, err := c.Kubectl(ctx, fmt.Sprintf(release, other), "delete", "-f", "-", "--wait"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if ef, _ = c.Kubectl(ctx, "", "get", "envoyfilters", "-A", "-l", "app.kubernetes.io/managed-by=serin", "-o", "name"); ef == "" {
			return
		}
	}
	t.Errorf("EnvoyFilter left after the Canary was deleted: %q", ef)
}
