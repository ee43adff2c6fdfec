// Package analysis holds the end-to-end tests of release analysis on the
// real local cluster: a real Prometheus discovering podsim pods through the
// API server, serin as a local process, grpc-go xDS clients as the data
// plane, and `serin tester`, alert receivers and hook servers as real
// local HTTP servers. Built-in metrics, MetricTemplates with auth, load
// reports, gates, hooks, alerts, the Grafana dashboard's queries, and the
// time to detect a failing canary, and Flagger's metric names.
package analysis

import (
	"fmt"
	"sync"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/integration/prometheus"
)

func TestMain(m *testing.M) {
	cluster.Main(m, cluster.Options{Nodes: 3})
}

// env is what the tests of this package share: one Prometheus, one serin
// (its webhook configuration is cluster-wide) and podsim for every
// namespace.
type env struct {
	c     *cluster.Cluster
	prom  *prometheus.Prometheus
	serin *harness.Serin
	cl    client.Client
}

// TestAnalysis sets up the shared environment and runs the scenarios: the
// one that stops Prometheus first, alone; the others in parallel, each in
// its own namespace.
func TestAnalysis(t *testing.T) {
	c := cluster.Get(t)
	e := &env{c: c}
	e.prom = prometheus.Run(t, c, prometheus.Options{})
	harness.RunPodsim(t, c)
	e.serin = harness.Install(t, c, harness.Options{PrometheusAddress: e.prom.URL, Sets: []string{"flagger.compat=true"}, ExtraArgs: []string{"--flagger-metrics", "--flagger-compat"}})
	if err := e.prom.SetTokenTargets("serin", e.serin.MetricsToken(), fmt.Sprintf("127.0.0.1:%d", e.serin.Ports.Metrics)); err != nil {
		t.Fatal(err)
	}
	cl, err := harness.Client(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	e.cl = cl

	// Alone: it stops Prometheus.
	t.Run("LoadReportsOnly", e.testLoadReportsOnly)

	var wg sync.WaitGroup

	// Together. The detection times depend on analysis intervals, not on
	// CPU, so they are measured beside the other scenarios.
	slots := make(chan struct{}, 3)
	for _, sc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"DetectionTime", e.testDetectionTime},
		{"BuiltinMetrics", e.testBuiltinMetrics(istioMesh)},
		{"BuiltinMetricsLinkerd", e.testBuiltinMetrics(linkerdMesh)},
		{"NoTraffic", e.testNoTraffic},
		{"MetricTemplateAuth", e.testMetricTemplateAuth},
		{"TemplateInjection", e.testTemplateInjection},
		{"GatesThroughTester", e.testGates},
		{"RollbackHook", e.testRollbackHook},
		{"DashboardQueries", e.testDashboard},
		{"EgressHooks", e.testEgressHooks},
		{"SecretBinding", e.testSecretBinding},
		{"FlaggerMetrics", e.testFlaggerMetrics},
		{"FlaggerRelease", e.testFlaggerRelease},
		{"InfluxRelease", e.testInfluxRelease},
	} {
		// Concurrent t.Run calls rather than t.Parallel: -parallel defaults
		// to the number of CPUs, and these scenarios mostly wait. At most
		// three at a time, so the data plane and Prometheus keep up on two
		// cores.
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			t.Run(sc.name, sc.run)
		})
	}
	wg.Wait()
}
