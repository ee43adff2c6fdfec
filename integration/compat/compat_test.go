package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

func TestMain(m *testing.M) {
	cluster.Main(m, cluster.Options{Nodes: 1})
}

// flavour is one Flagger-shaped Canary and the fields serin must report
// as ignored (every other field of it is honoured).
type flavour struct {
	file    string
	ignored []string
}

var flavours = []flavour{
	{"istio.yaml", nil},
	{"gatewayapi.yaml", []string{
		"spec.service.backendTimeout", "spec.service.rewrite.type",
	}},
	{"linkerd.yaml", []string{
		"spec.analysis.webhooks[].disableTLS",
		"spec.autoscalerRef.primaryScalerReplicas",
	}},
	{"kubernetes.yaml", []string{"spec.ingressRef"}},
}

// TestFlaggerManifests installs serin once and applies each flavour in a
// namespace of its own.
func TestFlaggerManifests(t *testing.T) {
	c := cluster.Get(t)
	harness.InstallIstioCRDs(t, c)
	harness.InstallGatewayAPICRDs(t, c)
	harness.Install(t, c, harness.Options{Sets: []string{"flagger.compat=true"}, ExtraArgs: []string{"--flagger-compat"}})
	t.Run("flagger/invalid", func(t *testing.T) { assertRejected(t, c, c.Namespace(t)) })
	for _, f := range flavours {
		manifest, err := os.ReadFile(filepath.Join("testdata", f.file))
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(f.file, ".yaml")
		// One after the other: every flavour's namespace routes the same
		// hosts, and the oldest route owns a host.
		t.Run("serin/"+name, func(t *testing.T) {
			ns := c.Namespace(t)
			applyWorkload(t, c, ns)
			warnings := apply(t, c, ns, string(manifest))
			assertWarnings(t, warnings, f.ignored)
			assertCondition(t, c, "canaries.serin.dev", ns, f.ignored)
		})
		t.Run("flagger/"+name, func(t *testing.T) {
			ns := c.Namespace(t)
			applyWorkload(t, c, ns)
			flagger := strings.Replace(string(manifest), "apiVersion: serin.dev/v1alpha1", "apiVersion: flagger.app/v1beta1", 1)
			// The same warnings at admission: serin's webhook validates
			// Flagger's kinds as the serin.dev objects they run as.
			assertWarnings(t, apply(t, c, ns, flagger), f.ignored)
			// serin's status, converted into Flagger's shape, lists the
			// same fields; the engine runs the serin.dev Canary it owns.
			assertCondition(t, c, "canaries.flagger.app", ns, f.ignored)
			assertMirrored(t, c, ns)
		})
	}
}

// assertMirrored checks that the flagger.app Canary is run by a serin.dev
// Canary it owns, and that kubectl shows Flagger's columns and phase.
func assertMirrored(t *testing.T, c *cluster.Cluster, ns string) {
	t.Helper()
	ctx := context.Background()
	owner, err := c.Kubectl(ctx, "", "get", "canaries.serin.dev", "podinfo", "-n", ns, "-o", "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].apiVersion}")
	if err != nil || owner != "Canary/flagger.app/v1beta1" {
		t.Errorf("serin.dev Canary owned by %q (%v), want the flagger.app Canary", owner, err)
	}
	table, err := c.Kubectl(ctx, "", "get", "canaries.flagger.app", "podinfo", "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	if header := strings.Fields(strings.SplitN(table, "\n", 2)[0]); !slices.Equal(header, []string{"NAME", "STATUS", "WEIGHT", "LASTTRANSITIONTIME"}) {
		t.Errorf("kubectl get columns %q", header)
	}
	phase, err := c.Kubectl(ctx, "", "get", "canaries.flagger.app", "podinfo", "-n", ns, "-o", "jsonpath={.status.phase}")
	if err != nil || phase == "" {
		t.Errorf("flagger.app Canary has no phase (%v)", err)
	}
	t.Logf("flagger.app Canary:\n%s", table)
}

// applyWorkload creates what the Canaries release: a Deployment, its
// Service and an HPA.
func applyWorkload(t *testing.T, c *cluster.Cluster, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Kubectl(ctx, workload, "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = c.Kubectl(ctx, "", "delete", "-n", ns, "--wait", "--ignore-not-found",
			"virtualservices.networking.istio.io/podinfo", "httproutes.gateway.networking.k8s.io/podinfo")
	})
}

// workload is what a namespace that Flagger ran has: the Deployment, and
// the routes Flagger made for its hosts (a VirtualService and an
// HTTPRoute), which make the namespace the owner of those hosts.
const workload = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: podinfo}
spec:
  hosts: [app.example.com]
  http:
  - route:
    - destination: {host: podinfo}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: podinfo}
spec:
  hostnames: [www.example.com]
  rules:
  - backendRefs:
    - {name: podinfo, port: 9898}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo}
spec:
  replicas: 1
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers:
      - name: app
        image: ghcr.io/stefanprodan/podinfo:6.0.0
        ports: [{name: http, containerPort: 9898}]
---
apiVersion: v1
kind: Service
metadata: {name: podinfo}
spec:
  selector: {app: podinfo}
  ports: [{name: http, port: 9898, targetPort: 9898}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: podinfo}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
`

// assertRejected: invalid flagger.app objects are refused at admission
// with serin's message, naming Flagger's kind, the field and the value.
func assertRejected(t *testing.T, c *cluster.Cluster, ns string) {
	for _, tc := range []struct{ manifest, want string }{
		{`apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 60}`,
			`The Canary "podinfo" is invalid: spec.analysis.maxWeight: Invalid value: 50: must be at least stepWeight (60)`},
		{`apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: latency}
spec:
  provider: {type: prometheus, address: "http://prometheus:9090"}
  query: "histogram_quantile(0.99, {{ broken"`,
			`The MetricTemplate "latency" is invalid: spec.query: Invalid value: "histogram_quantile(0.99, {{ broken"`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := c.Kubectl(ctx, tc.manifest, "apply", "-n", ns, "-f", "-")
		cancel()
		if err == nil || !strings.Contains(err.Error()+out, tc.want) {
			t.Errorf("kubectl apply of an invalid object: %v %s; want an error with %q", err, out, tc.want)
		}
	}
}

// apply runs `kubectl apply` as a user does (strict field validation, the
// default) and returns the warnings kubectl printed.
func apply(t *testing.T, c *cluster.Cluster, ns, manifest string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "kubectl"), "--kubeconfig="+c.Kubeconfig, "apply", "-n", ns, "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	var out []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if w, ok := strings.CutPrefix(line, "Warning: "); ok {
			out = append(out, w)
		}
	}
	t.Logf("kubectl: %s\n%s", strings.TrimSpace(stdout.String()), stderr.String())
	return out
}

func assertWarnings(t *testing.T, warnings, ignored []string) {
	t.Helper()
	var got []string
	for _, w := range warnings {
		rest, ok := strings.CutPrefix(w, "serin ignores ")
		if !ok {
			continue
		}
		path, why, _ := strings.Cut(rest, ": ")
		if why == "" {
			t.Errorf("warning %q gives no reason", w)
		}
		got = append(got, path)
	}
	slices.Sort(got)
	if !slices.Equal(got, ignored) {
		t.Errorf("warnings name\n %q\nwant\n %q", got, ignored)
	}
}

// assertCondition waits until serin has reconciled the Canary (of
// resource, e.g. canaries.serin.dev) and checks that Compatible is False
// and lists exactly the ignored fields.
func assertCondition(t *testing.T, c *cluster.Cluster, resource, ns string, ignored []string) {
	t.Helper()
	cond := waitCondition(t, c, resource, ns)
	if len(ignored) == 0 {
		if cond.Status != metav1.ConditionTrue || cond.Reason != "AllFieldsHonoured" {
			t.Errorf("condition %+v, want True/AllFieldsHonoured", cond)
		}
		return
	}
	if cond.Status != metav1.ConditionFalse || cond.Reason != "IgnoredFields" {
		t.Fatalf("condition %+v, want False/IgnoredFields", cond)
	}
	msg := strings.TrimPrefix(cond.Message, "serin ignores: ")
	var got []string
	for _, part := range strings.Split(msg, "; ") {
		path, _, _ := strings.Cut(part, ": ")
		got = append(got, path)
	}
	if !slices.Equal(got, ignored) {
		t.Errorf("condition lists\n %q\nwant\n %q\n(%s)", got, ignored, cond.Message)
	}
}

// waitCondition polls the Canary podinfo until it has a Compatible
// condition.
func waitCondition(t *testing.T, c *cluster.Cluster, resource, ns string) metav1.Condition {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := c.Kubectl(context.Background(), "", "get", resource, "podinfo", "-n", ns, "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var obj struct {
			Status struct {
				Conditions []metav1.Condition `json:"conditions"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(out), &obj); err != nil {
			t.Fatal(err)
		}
		if cond := apimeta.FindStatusCondition(obj.Status.Conditions, v1alpha1.ConditionCompatible); cond != nil {
			return *cond
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s condition after 2m:\n%s", v1alpha1.ConditionCompatible, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
