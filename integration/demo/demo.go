package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/integration/prometheus"
)

const demoNamespace = "demo"

// demo is one run: what it started and where it prints.
type demo struct {
	o     options
	root  string
	start time.Time
	out   io.Writer

	kubeconfig string
	cfg        *rest.Config
	cl         client.Client

	ports struct {
		webhook, health int
	}
	xdsAddress string
	xdsCreds   harness.XDSCredentials
	metrics    string
	prom       *prometheus.Prometheus
	traffic    *traffic
}

const canaryYAML = `apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: podinfo
  namespace: demo
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  progressDeadlineSeconds: 60
  service: {port: 9999, appProtocol: grpc}
  judge: {kind: Comparative}
  analysis:
    interval: %s
    threshold: 2
    stepWeight: 20
    maxWeight: 60
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
    - name: request-duration
      thresholdRange: {max: 500}
`

func (d *demo) run(ctx context.Context) error {
	fmt.Fprintln(d.out, "serin demo: a canary release and a rollback on a local cluster")
	if err := os.MkdirAll(d.o.dir, 0o755); err != nil {
		return err
	}
	if err := d.ensureCluster(ctx); err != nil {
		return err
	}
	cl, err := harness.Client(d.cfg)
	if err != nil {
		return err
	}
	d.cl = cl
	if err := d.startPodsimAndPrometheus(ctx); err != nil {
		return err
	}
	if err := d.installSerin(ctx); err != nil {
		return err
	}
	if err := d.removePrevious(ctx); err != nil {
		return err
	}
	if err := d.deployApp(ctx); err != nil {
		return err
	}

	d.xdsCreds, err = harness.IssueXDSCredentials(ctx, filepath.Join(d.o.bin, "serin"), d.kubeconfig, demoNamespace, d.o.dir)
	if err != nil {
		return err
	}
	d.say("xDS: client certificate for namespace %s issued with `serin xds-cert` (files in %s)", demoNamespace, d.rel(d.xdsCreds.Dir))
	d.traffic = &traffic{}
	tctx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	target := "podinfo." + demoNamespace + ":9999"
	go func() { _ = runTraffic(tctx, d.xdsAddress, d.xdsCreds, "demo-client", target, d.o.rps, d.traffic) }()
	d.say("traffic: %d requests/s from a grpc-go xDS client to xds:///%s", d.o.rps, target)
	time.Sleep(2 * time.Second)
	d.say("traffic: %s", d.traffic.summary(2*time.Second))

	if err := d.release(ctx, "2.0.0", "", "v2, healthy", v1alpha1.PhaseSucceeded); err != nil {
		return err
	}
	if err := d.release(ctx, "3.0.0", `, {name: ERROR_RATE, value: "0.3"}`, "v3, failing 30% of requests", v1alpha1.PhaseFailed); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	d.say("traffic after the rollback: %s", d.traffic.summary(2*time.Second))
	stopTraffic()

	// Leave a gentle load running so Prometheus keeps showing both tracks.
	self, err := os.Executable()
	if err == nil {
		_, err = startDetached(d.o.dir, procTraffic, self, "traffic", "-xds", d.xdsAddress, "-xds-certs", d.xdsCreds.Dir, "-target", target, "-rps", "5")
	}
	if err != nil {
		d.say("background traffic not started: %v", err)
	}
	d.goodbye()
	return nil
}

// installSerin applies the chart rendered for a local serin, then runs
// `serin controller` detached and waits until it is ready.
func (d *demo) installSerin(ctx context.Context) error {
	d.say("serin: installing CRDs, RBAC and the webhook configuration from charts/serin (webhook url https://127.0.0.1:%d)", d.ports.webhook)
	manifests, err := harness.RenderLocal(ctx, filepath.Join(d.o.bin, "helm"), d.ports.webhook)
	if err != nil {
		return err
	}
	if _, err := d.kubectl(ctx, "", "get", "namespace", harness.Namespace); err != nil {
		if _, err := d.kubectl(ctx, "", "create", "namespace", harness.Namespace); err != nil {
			return err
		}
	}
	if _, err := d.kubectl(ctx, manifests, "apply", "--server-side", "--force-conflicts", "-f", "-"); err != nil {
		return fmt.Errorf("apply the chart: %w", err)
	}
	// Prometheus scrapes serin's /metrics as a service account bound to the
	// chart's metrics-reader ClusterRole.
	token, err := harness.ServiceAccountToken(ctx, d.kubectl, harness.MetricsScraper, harness.MetricsReaderRole)
	if err != nil {
		return err
	}
	if err := d.prom.SetTokenTargets("serin", token, d.metrics); err != nil {
		return err
	}
	proc, err := startDetached(d.o.dir, procSerin, filepath.Join(d.o.bin, "serin"), "controller",
		"--kubeconfig="+d.kubeconfig, "--namespace="+harness.Namespace,
		"--webhook-host=127.0.0.1", fmt.Sprintf("--webhook-port=%d", d.ports.webhook), "--webhook-ip=127.0.0.1",
		"--webhook-config-name=serin", "--xds-address="+d.xdsAddress, "--metrics-address="+d.metrics,
		fmt.Sprintf("--health-address=127.0.0.1:%d", d.ports.health), "--leader-elect=false",
		"--log-format=console", "--prometheus-address="+d.prom.URL)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := waitOK(wctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", d.ports.health), proc); err != nil {
		return fmt.Errorf("serin: %w", err)
	}
	d.say("serin: controller running (pid %d, xDS on %s, log %s)", proc.Pid(), d.xdsAddress, d.rel(proc.LogPath))
	return nil
}

// startPodsimAndPrometheus makes the demo's pods answer and starts a
// Prometheus that finds them through the API server and scrapes serin.
func (d *demo) startPodsimAndPrometheus(ctx context.Context) error {
	ports, err := cluster.FreePorts(4)
	if err != nil {
		return err
	}
	d.ports.webhook, d.ports.health = ports[0], ports[3]
	d.xdsAddress = fmt.Sprintf("127.0.0.1:%d", ports[1])
	d.metrics = fmt.Sprintf("127.0.0.1:%d", ports[2])

	podsim, err := startDetached(d.o.dir, procPodsim, filepath.Join(d.o.bin, "podsim"), "--kubeconfig="+d.kubeconfig, "--namespace="+demoNamespace)
	if err != nil {
		return err
	}
	d.say("podsim: serving the %s namespace's pods on their loopback IPs (pid %d)", demoNamespace, podsim.Pid())
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	d.prom, err = prometheus.Start(pctx, prometheus.Options{
		Binary: filepath.Join(d.o.bin, "prometheus"), Dir: filepath.Join(d.o.dir, "prometheus"),
		Kube: d.cfg, Namespaces: []string{demoNamespace}, PIDFile: filepath.Join(d.o.dir, procPrometheus+".pid"),
	})
	if err != nil {
		return err
	}
	d.say("prometheus: %s (pods found through the API server, scraped every second; serin's /metrics too)", d.prom.URL)
	return nil
}

// deployApp applies the Canary and podinfo 1.0.0 and waits until the
// Canary is Initialized.
func (d *demo) deployApp(ctx context.Context) error {
	if _, err := d.kubectl(ctx, "", "create", "namespace", demoNamespace); err != nil {
		return err
	}
	manifest := fmt.Sprintf(canaryYAML, d.o.interval) + "---\n" + harness.PodinfoDeployment(demoNamespace, "1.0.0", 3, "")
	if _, err := d.kubectl(ctx, manifest, "apply", "-f", "-"); err != nil {
		return err
	}
	d.say("app: podinfo 1.0.0, 3 replicas, annotated serin.dev/canary: enabled, with a Canary (interval %s, steps of 20%% up to 60%%, comparative judge)", d.o.interval)
	if _, err := d.waitPhase(ctx, v1alpha1.PhaseInitialized, "", time.Minute, nil); err != nil {
		return err
	}
	d.say("app: Canary initialized; serin serves podinfo.%s:9999 over xDS", demoNamespace)
	return nil
}

func (d *demo) kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	return cluster.Kubectl(ctx, filepath.Join(d.o.bin, "kubectl"), d.kubeconfig, stdin, args...)
}

// say prints a line stamped with the time since the demo began.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// rel shows a path relative to the repository when it is inside it.
func (d *demo) rel(path string) string {
	if r, err := filepath.Rel(d.root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}
