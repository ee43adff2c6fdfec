package prometheus_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/integration/prometheus"
)

func TestMain(m *testing.M) { cluster.Main(m, cluster.Options{Nodes: 1}) }

const podTmpl = `apiVersion: v1
kind: Pod
metadata: {name: %[2]s, namespace: %[1]s, labels: {app: web}}
spec:
  containers:
  - name: app
    image: ghcr.io/stefanprodan/podinfo:6.0.0
    ports:
    - {name: http, containerPort: 9898}
    - {name: grpc, containerPort: 9999}
`

// TestScrapesPods: pods are discovered through the API server, only their
// http port is scraped, the data survives a restart and basic auth is
// enforced.
func TestScrapesPods(t *testing.T) {
	c := cluster.Get(t)
	ns := c.Namespace(t)
	harness.RunPodsim(t, c, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	auth := &prometheus.BasicAuth{Username: "serin", Password: "s3cret"}
	p := prometheus.Run(t, c, prometheus.Options{Namespaces: []string{ns}, BasicAuth: auth})
	if _, err := c.Kubectl(ctx, fmt.Sprintf(podTmpl, ns, "web-0"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	// One target per pod (the http port, not grpc), healthy.
	query := fmt.Sprintf(`up{job=%q,namespace=%q}`, prometheus.PodJob, ns)
	vec, err := p.WaitFor(ctx, query, func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 1 })
	if err != nil {
		t.Fatal(err)
	}
	if inst := string(vec[0].Metric["instance"]); !strings.HasSuffix(inst, ":9898") || vec[0].Metric["pod"] != "web-0" {
		t.Fatalf("target %v, want web-0's port 9898", vec[0].Metric)
	}

	// Requests to the pod show up as Istio-style telemetry.
	ip, err := c.Kubectl(ctx, "", "get", "pod", "web-0", "-n", ns, "-o", "jsonpath={.status.podIP}")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		resp, err := http.Get("http://" + ip + ":9898/") //nolint:noctx // test traffic
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	reqs := fmt.Sprintf(`sum(istio_requests_total{destination_workload_namespace=%q,reporter="destination"})`, ns)
	if _, err := p.WaitFor(ctx, reqs, func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 5 }); err != nil {
		t.Fatal(err)
	}

	// Extra targets through file discovery: Prometheus scraping itself.
	if err := p.SetTargets("self", strings.TrimPrefix(p.URL, "http://")); err != nil {
		t.Fatal(err)
	}
	// Its own /metrics needs the credentials too, so the target is down:
	// seen, scraped, refused.
	if _, err := p.WaitFor(ctx, `up{job="self"}`, func(v model.Vector) bool { return len(v) == 1 }); err != nil {
		t.Fatal(err)
	}

	// Without credentials every endpoint is refused.
	resp, err := http.Get(p.URL + "/api/v1/query?query=up") //nolint:noctx // test probe
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("query without credentials: %d, want 401", resp.StatusCode)
	}

	// Stop and start: same address, same data.
	p.Stop()
	if p.Running() {
		t.Fatal("still running after Stop")
	}
	if _, err := http.Get(p.URL + "/-/ready"); err == nil { //nolint:noctx,bodyclose // must fail
		t.Fatal("answered after Stop")
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitFor(ctx, reqs, func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 5 }); err != nil {
		t.Fatal(err)
	}
}
