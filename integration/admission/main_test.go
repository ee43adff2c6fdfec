package admission

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

func TestMain(m *testing.M) {
	cluster.Main(m, cluster.Options{Nodes: 1})
}

// env is the package's cluster with the one serin installed on it (the
// webhook configurations are cluster-wide, so the tests share it).
type env struct {
	c  *cluster.Cluster
	s  *harness.Serin
	cs kubernetes.Interface
}

// TestAdmission installs serin once (chart in local-process mode, chart
// default failurePolicy Ignore) and runs every admission scenario against
// it. The first three run alone, in order: they count the requests serin
// receives, time the API server, or stop serin. The rest run in parallel,
// each in its own namespace.
func TestAdmission(t *testing.T) {
	c := cluster.Get(t)
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	// Istio's and Gateway API's CRDs before serin starts: the
	// host-ownership check reads their Gateways and routes.
	harness.InstallIstioCRDs(t, c)
	harness.InstallGatewayAPICRDs(t, c)
	e := &env{c: c, s: harness.Install(t, c, harness.Options{}), cs: cs}

	t.Run("UnmanagedNeverSent", e.testUnmanagedNeverSent)
	t.Run("ApplyLatency", e.testApplyLatency)
	t.Run("WebhookDown", e.testWebhookDown)
	t.Run("MetricsAuth", e.testMetricsAuth)
	t.Run("parallel", func(t *testing.T) {
		t.Run("Hold", e.testHold)
		t.Run("HoldServerSide", e.testHoldServerSide)
		t.Run("NotHeld", e.testNotHeld)
		t.Run("Rejects", e.testRejects)
		t.Run("HostOwnership", e.testHostOwnership)
		t.Run("HostOwnershipRecheck", e.testHostOwnershipRecheck)
	})
}

// deploy is a Deployment manifest as a user writes it.
type deploy struct {
	ns, name, image string
	replicas        int
	annotations     map[string]string // on the Deployment
	labels          map[string]string // on the Deployment
	paused          bool
}

func (d deploy) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\n  namespace: %s\n", d.name, d.ns)
	writeMap(&b, "  ", "annotations", d.annotations)
	writeMap(&b, "  ", "labels", d.labels)
	replicas := d.replicas
	if replicas == 0 {
		replicas = 1
	}
	fmt.Fprintf(&b, "spec:\n  replicas: %d\n", replicas)
	if d.paused {
		b.WriteString("  paused: true\n")
	}
	fmt.Fprintf(&b, `  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: app
        image: ghcr.io/stefanprodan/podinfo:%[2]s
        ports:
        - {name: http, containerPort: 9898}
        - {name: grpc, containerPort: 9999}
`, d.name, d.image)
	return b.String()
}

func writeMap(b *strings.Builder, indent, key string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	fmt.Fprintf(b, "%s%s:\n", indent, key)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(b, "%s  %s: %q\n", indent, k, m[k])
	}
}

var enabled = map[string]string{v1alpha1.AnnotationCanary: "enabled"}

// kubectlDeployment runs kubectl with args (an -o json answer) and decodes
// the Deployment it prints: for apply, the object the API server answered
// with, that is what admission let through.
func (e *env) kubectlDeployment(t *testing.T, stdin string, args ...string) *appsv1.Deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := e.c.Kubectl(ctx, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("kubectl %s: decode: %v\n%s", strings.Join(args, " "), err, out)
	}
	return &d
}

func (e *env) get(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := e.cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// hold is what admission recorded on a Deployment.
type hold struct {
	Paused            bool
	Candidate, Stable string
	HasCandidate      bool
	HasStable         bool
}

func holdOf(d *appsv1.Deployment) hold {
	c, hc := d.Annotations[v1alpha1.AnnotationCandidateRevision]
	s, hs := d.Annotations[v1alpha1.AnnotationStableRevision]
	return hold{Paused: d.Spec.Paused, Candidate: c, Stable: s, HasCandidate: hc, HasStable: hs}
}

func image(d *appsv1.Deployment) string { return d.Spec.Template.Spec.Containers[0].Image }

// call is one admission request serin answered, from its debug log.
type call struct {
	Webhook   string `json:"webhook"`
	Operation string `json:"operation"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	DryRun    bool   `json:"dryRun"`
	Result    string `json:"result"`
	Resource  struct {
		Resource string `json:"resource"`
	} `json:"resource"`
}

// calls are the admission requests serin answered for one object (by
// resource, e.g. "deployments"), in order, read from the log line each
// answer writes before it is sent.
func (e *env) calls(resource, ns, name string) []call {
	var out []call
	sc := bufio.NewScanner(strings.NewReader(e.s.Log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.IndexByte(line, '{')
		if i < 0 || !strings.Contains(line[:i], "\tadmission\t") {
			continue
		}
		var c call
		if json.Unmarshal([]byte(line[i:]), &c) != nil || c.Webhook == "" || c.Result == "" {
			continue
		}
		if c.Resource.Resource == resource && c.Namespace == ns && c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// callsOf filters calls by webhook.
func callsOf(cs []call, webhook string) []call {
	return matching(cs, func(c call) bool { return c.Webhook == webhook })
}

// matching filters calls.
func matching(cs []call, keep func(call) bool) []call {
	return slices.DeleteFunc(slices.Clone(cs), func(c call) bool { return !keep(c) })
}

// metric reads a sample sum from serin's /metrics.
func (e *env) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, err := e.s.Metric(name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// eventually polls f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
