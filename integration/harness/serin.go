// Package harness runs serin for the integration tests the way a cluster
// admin would in local-process mode: the chart rendered with the loopback
// webhook url applied to the real API server, and `serin controller` as a
// child process that can be stopped, killed and restarted. The process
// acts as the chart's service account (impersonated), so every suite runs
// with exactly the permissions the chart grants. It also has the
// data-plane side: grpc-go xDS clients, gRPC C-core xDS clients (Debian's
// python3-grpcio running ccore/xdsclient.py) and a raw ADS observer; `serin
// tester`, the hook companion; and ServiceProxy, a stand-in for kube-proxy
// that makes a Service's cluster IP reach its endpoints.
package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/serin-dev/serin/integration/cluster"
)

// Namespace is serin's own namespace in the tests.
const Namespace = "serin-system"

// ServiceAccount is the user serin acts as: the chart's service account.
const ServiceAccount = "system:serviceaccount:" + Namespace + ":serin"

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// Binary builds serin once per test process (with the race detector when
// the tests run with it) and returns its path.
func Binary() (string, error) {
	buildOnce.Do(func() {
		root, err := cluster.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "serin-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cluster.OnExit(func() { _ = os.RemoveAll(dir) })
		builtBin = filepath.Join(dir, "serin")
		args := []string{"build", "-o", builtBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/serin")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build serin: %w: %s", err, out)
		}
	})
	return builtBin, buildErr
}

// Options configure a serin installation.
type Options struct {
	// PrometheusAddress is passed to --prometheus-address.
	PrometheusAddress string
	// FailurePolicy of the Deployment webhook (chart default Ignore).
	FailurePolicy string
	// EgressAllow is passed to --egress-allow. nil means LoopbackEgress:
	// on the local cluster hooks, alert receivers, the tester and
	// Prometheus all listen on 127.0.0.1, which serin refuses unless an
	// admin allows it, as the admin of a development cluster would.
	EgressAllow []string
	// ExtraArgs are added to `serin controller`. The chart values of the
	// flags that shape serin's RBAC (--istio-mode,
	// --istio-bootstrap-namespaces, --watch-namespaces, --config-tracking)
	// are set to match.
	ExtraArgs []string
	// Sets are extra `helm --set` values for the chart.
	Sets []string
}

// LoopbackEgress allows serin's outbound calls to loopback (the API
// server's own port stays refused).
var LoopbackEgress = []string{"127.0.0.0/8", "::1"}

// chartSets are the chart values that match the flags in args, as the
// chart's Deployment would pass them.
func chartSets(args []string) []string {
	values := map[string]string{
		"--istio-mode":                 "istio.mode=%s",
		"--istio-bootstrap-namespaces": "istio.bootstrap.namespaces={%s}",
		"--watch-namespaces":           "watchNamespaces={%s}",
		"--config-tracking":            "controller.configTracking=%s",
	}
	var sets []string
	for _, a := range args {
		flag, v, ok := strings.Cut(a, "=")
		if f, known := values[flag]; ok && known {
			sets = append(sets, fmt.Sprintf(f, v))
		}
	}
	return sets
}

// Serin is an installed serin: chart objects in the cluster and a
// controller process.
type Serin struct {
	c       *cluster.Cluster
	bin     string
	opts    Options
	Ports   Ports
	logPath string
	// metricsToken is a token of MetricsScraper, bound to the chart's
	// MetricsReaderRole: what /metrics lets in.
	metricsToken string

	mu   sync.Mutex
	proc *cluster.Process
}

// Ports are serin's loopback listeners.
type Ports struct {
	Webhook, XDS, Metrics, Health int
}

// XDSAddress is serin's xDS server as host:port.
func (s *Serin) XDSAddress() string { return fmt.Sprintf("127.0.0.1:%d", s.Ports.XDS) }

// Install renders the chart in local-process mode (webhook url on
// loopback), applies it with kubectl and starts serin. The installation is
// removed when the test ends.
func Install(t testing.TB, c *cluster.Cluster, opts Options) *Serin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := newSerin(t, c, bin, opts)
	manifests, err := s.Render(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kubectl(ctx, "", "create", "namespace", Namespace); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatal(err)
	}
	if _, err := c.Kubectl(ctx, manifests, "apply", "--server-side", "--force-conflicts", "-f", "-"); err != nil {
		t.Fatalf("apply chart: %v", err)
	}
	if s.metricsToken, err = ServiceAccountToken(ctx, c.Kubectl, MetricsScraper, MetricsReaderRole); err != nil {
		t.Fatal(err)
	}
	s.run(ctx, t, "serin")
	return s
}

// Replica starts a second serin process on ports of its own, as the
// chart's second replica would run: same cluster objects, its own xDS
// server and webhook server. The webhook configuration keeps pointing at
// the first. Stopped when the test ends.
func (s *Serin) Replica(t testing.TB) *Serin {
	t.Helper()
	r := newSerin(t, s.c, s.bin, s.opts)
	r.metricsToken = s.metricsToken
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r.run(ctx, t, "replica")
	return r
}

// newSerin is a serin on free loopback ports of its own, not started.
func newSerin(t testing.TB, c *cluster.Cluster, bin string, opts Options) *Serin {
	t.Helper()
	ports, err := cluster.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	return &Serin{c: c, bin: bin, opts: opts, Ports: Ports{Webhook: ports[0], XDS: ports[1], Metrics: ports[2], Health: ports[3]},
		logPath: filepath.Join(c.Dir, fmt.Sprintf("serin-%d.log", ports[0]))}
}

// run starts s and stops it when the test ends; the log of a failed test
// shows its last lines, as the log of what.
func (s *Serin) run(ctx context.Context, t testing.TB, what string) {
	t.Helper()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("%s log: %s\n%s", what, s.logPath, cluster.Tail(s.logPath, 40))
		}
	})
}

// Render is the chart rendered for local-process mode, with CRDs.
func (s *Serin) Render(ctx context.Context) (string, error) {
	sets := chartSets(s.opts.ExtraArgs)
	if s.opts.FailurePolicy != "" {
		sets = append(sets, "webhook.failurePolicy="+s.opts.FailurePolicy)
	}
	sets = append(sets, s.opts.Sets...)
	return RenderLocal(ctx, filepath.Join(s.c.BinDir, "helm"), s.Ports.Webhook, sets...)
}

// RenderLocal renders the chart, with CRDs, for a serin that runs as a
// local process with its webhook server on 127.0.0.1:webhookPort; sets are
// extra --set values.
func RenderLocal(ctx context.Context, helm string, webhookPort int, sets ...string) (string, error) {
	root, err := cluster.RepoRoot()
	if err != nil {
		return "", err
	}
	args := []string{"template", "serin", filepath.Join(root, "charts", "serin"), "--namespace", Namespace, "--include-crds",
		"--set", "controller.enabled=false",
		"--set", fmt.Sprintf("webhook.url=https://127.0.0.1:%d", webhookPort),
		"--set", "webhook.ips={127.0.0.1}"}
	for _, v := range sets {
		args = append(args, "--set", v)
	}
	out, err := cluster.Run(ctx, "", helm, args...)
	if err != nil {
		return "", err
	}
	return out, nil
}

// Start runs `serin controller` and waits until it is ready (webhook
// certificate loaded, caches synced).
func (s *Serin) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return fmt.Errorf("serin already running")
	}
	kubeconfig, err := ServiceAccountKubeconfig(s.c)
	if err != nil {
		return err
	}
	args := []string{"controller", "--kubeconfig=" + kubeconfig, "--namespace=" + Namespace,
		"--webhook-host=127.0.0.1", "--webhook-port=" + strconv.Itoa(s.Ports.Webhook), "--webhook-ip=127.0.0.1",
		"--webhook-config-name=serin",
		fmt.Sprintf("--xds-address=127.0.0.1:%d", s.Ports.XDS),
		fmt.Sprintf("--metrics-address=127.0.0.1:%d", s.Ports.Metrics),
		fmt.Sprintf("--health-address=127.0.0.1:%d", s.Ports.Health),
		"--replica-name=" + fmt.Sprintf("serin-%d", s.Ports.Webhook),
		"--leader-elect=false", "--log-format=console", "--log-level=debug"}
	if s.opts.PrometheusAddress != "" {
		args = append(args, "--prometheus-address="+s.opts.PrometheusAddress)
	}
	egressAllow := s.opts.EgressAllow
	if egressAllow == nil {
		egressAllow = LoopbackEgress
	}
	if len(egressAllow) > 0 {
		args = append(args, "--egress-allow="+strings.Join(egressAllow, ","))
	}
	args = append(args, s.opts.ExtraArgs...)
	proc, err := cluster.StartProcess("serin", s.bin, args, cluster.ProcessOptions{
		Log: s.logPath, Header: fmt.Sprintf("=== %s start", time.Now().Format(time.RFC3339Nano)),
	})
	if err != nil {
		return err
	}
	s.proc = proc
	s.registerXDS()
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", s.Ports.Health)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-proc.Done():
			return fmt.Errorf("serin exited during start:\n%s", cluster.Tail(s.logPath, 30))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(ready) //nolint:noctx // local probe
		if err == nil {
			resp.Body.Close()
			// /metrics is served by a runnable of its own, which readiness
			// does not cover: wait for it too.
			if resp.StatusCode == http.StatusOK && s.metricsListening() {
				return nil
			}
		}
	}
	return fmt.Errorf("serin not ready after a minute:\n%s", cluster.Tail(s.logPath, 30))
}

// ServiceAccountKubeconfig is a kubeconfig of the cluster's admin that
// impersonates serin's service account (ServiceAccount): the API server
// authorizes each request as that account, groups included.
func ServiceAccountKubeconfig(c *cluster.Cluster) (string, error) {
	path := filepath.Join(c.Dir, "kubeconfig-serin")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		return "", fmt.Errorf("read admin kubeconfig: %w", err)
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok || cfg.AuthInfos[ctx.AuthInfo] == nil {
		return "", fmt.Errorf("kubeconfig %s: no user for context %q", c.Kubeconfig, cfg.CurrentContext)
	}
	cfg.AuthInfos[ctx.AuthInfo].Impersonate = ServiceAccount
	tmp := path + fmt.Sprintf(".%d", os.Getpid())
	if err := clientcmd.WriteToFile(*cfg, tmp); err != nil {
		return "", fmt.Errorf("write kubeconfig: %w", err)
	}
	return path, os.Rename(tmp, path)
}

// AllowSecrets grants serin get on Secrets in ns, as the chart's
// secretNamespaces value does: it applies the Role and RoleBinding that
// the chart renders for ns.
func (s *Serin) AllowSecrets(t testing.TB, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sets := append(chartSets(s.opts.ExtraArgs), s.opts.Sets...)
	out, err := RenderLocal(ctx, filepath.Join(s.c.BinDir, "helm"), s.Ports.Webhook, append(sets, "secretNamespaces={"+ns+"}")...)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, doc := range strings.Split(out, "\n---") {
		if strings.Contains(doc, "\n  namespace: "+ns+"\n") && strings.Contains(doc, "\n  name: serin-secrets\n") {
			docs = append(docs, doc)
		}
	}
	if len(docs) != 2 {
		t.Fatalf("the chart rendered %d Secret RBAC objects for %s, want a Role and a RoleBinding", len(docs), ns)
	}
	if _, err := s.c.Kubectl(ctx, strings.Join(docs, "\n---\n"), "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatalf("grant Secrets in %s: %v", ns, err)
	}
}

// Stop ends serin gracefully (SIGTERM, then SIGKILL after 20s).
func (s *Serin) Stop() {
	if p := s.take(); p != nil {
		p.Stop(20 * time.Second)
	}
}

// Kill ends serin at once, as a crash would.
func (s *Serin) Kill() {
	if p := s.take(); p != nil {
		p.Kill()
	}
}

// take is the running process, forgotten: the next Start starts anew.
func (s *Serin) take() *cluster.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	s.proc = nil
	return p
}

// Metric sums the samples of a metric on serin's /metrics whose labels
// include every given name="value" pair, scraped with MetricsToken.
func (s *Serin) Metric(name string, labels ...string) (float64, error) {
	return MetricSumWithToken(s.MetricsURL(), s.metricsToken, name, labels...)
}

// metricsListening reports whether serin's /metrics port accepts
// connections.
func (s *Serin) metricsListening() bool {
	u, err := url.Parse(s.MetricsURL())
	if err != nil {
		return false
	}
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// MetricsURL is serin's /metrics (HTTPS, self-signed).
func (s *Serin) MetricsURL() string {
	return fmt.Sprintf("https://127.0.0.1:%d/metrics", s.Ports.Metrics)
}

// MetricsToken is a bearer token that may read /metrics: of the
// MetricsScraper ServiceAccount, bound to MetricsReaderRole.
func (s *Serin) MetricsToken() string { return s.metricsToken }

// LogPath is the file serin logs to.
func (s *Serin) LogPath() string { return s.logPath }

// Log is serin's log so far.
func (s *Serin) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}
