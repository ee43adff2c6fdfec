// Package harness runs serin for the integration tests the way a cluster
// admin would in local-process mode: the chart rendered with the loopback
// webhook url applied to the real API server, and `serin controller` as a
// child process that can be stopped, killed and restarted. It also has the
// data-plane side: grpc-go xDS clients and a raw ADS observer.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

// Namespace is serin's own namespace in the tests.
const Namespace = "serin-system"

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
	// ExtraArgs are added to `serin controller`.
	ExtraArgs []string
	// Sets are extra `helm --set` values for the chart.
	Sets []string
}

// Serin is an installed serin: chart objects in the cluster and a
// controller process.
type Serin struct {
	c       *cluster.Cluster
	bin     string
	opts    Options
	Ports   Ports
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
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
	ports, err := cluster.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	s := &Serin{c: c, bin: bin, opts: opts, Ports: Ports{Webhook: ports[0], XDS: ports[1], Metrics: ports[2], Health: ports[3]},
		logPath: filepath.Join(c.Dir, fmt.Sprintf("serin-%d.log", ports[0]))}
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
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("serin log: %s\n%s", s.logPath, cluster.Tail(s.logPath, 40))
		}
	})
	return s
}

// Replica starts a second serin process on ports of its own, as the
// chart's second replica would run: same cluster objects, its own xDS
// server and webhook server. The webhook configuration keeps pointing at
// the first. Stopped when the test ends.
func (s *Serin) Replica(t testing.TB) *Serin {
	t.Helper()
	ports, err := cluster.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	r := &Serin{c: s.c, bin: s.bin, opts: s.opts, Ports: Ports{Webhook: ports[0], XDS: ports[1], Metrics: ports[2], Health: ports[3]},
		logPath: filepath.Join(s.c.Dir, fmt.Sprintf("serin-%d.log", ports[0]))}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("replica log: %s\n%s", r.logPath, cluster.Tail(r.logPath, 40))
		}
	})
	return r
}

// Render is the chart rendered for local-process mode, with CRDs.
func (s *Serin) Render(ctx context.Context) (string, error) {
	var sets []string
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
	cmd := exec.CommandContext(ctx, helm, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("helm template: %w: %s", err, errb.String())
	}
	return out.String(), nil
}

// Start runs `serin controller` and waits until it is ready (webhook
// certificate loaded, caches synced).
func (s *Serin) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("serin already running")
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"controller", "--kubeconfig=" + s.c.Kubeconfig, "--namespace=" + Namespace,
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
	args = append(args, s.opts.ExtraArgs...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(logFile, "=== %s start\n", time.Now().Format(time.RFC3339Nano))
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(done) }()
	s.cmd, s.done = cmd, done
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", s.Ports.Health)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("serin exited during start:\n%s", cluster.Tail(s.logPath, 30))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(ready) //nolint:noctx // local probe
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("serin not ready after a minute:\n%s", cluster.Tail(s.logPath, 30))
}

// Stop ends serin gracefully.
func (s *Serin) Stop() { s.signal(syscall.SIGTERM) }

// Kill ends serin at once, as a crash would.
func (s *Serin) Kill() { s.signal(syscall.SIGKILL) }

func (s *Serin) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Metric sums the samples of a metric on serin's /metrics whose labels
// include every given name="value" pair.
func (s *Serin) Metric(name string, labels ...string) (float64, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.Ports.Metrics)) //nolint:noctx // local scrape
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			ok = ok && strings.Contains(line, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}

// Log is serin's log so far.
func (s *Serin) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}
