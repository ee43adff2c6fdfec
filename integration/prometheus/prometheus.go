// Package prometheus runs a real Prometheus (bin/prometheus, built from
// source by hack/tools.sh with the Kubernetes discovery) for the
// integration tests and the demo: it discovers the local cluster's
// pods through kubernetes_sd_configs against the local API server (TLS
// with the cluster CA and the admin client certificate), scrapes each
// pod's port named "http" every second, scrapes any extra targets the
// caller names through file-based discovery (over HTTPS with a bearer
// token for serin's own /metrics),
// and can require basic auth. It can be stopped and started again on the
// same port and data directory, and has small helpers to query it.
package prometheus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/integration/cluster"
)

// PodJob is the job label of the pods discovered in the cluster.
const PodJob = "pods"

// Options configure a Prometheus.
type Options struct {
	// Binary is the prometheus executable. Default: prometheus in
	// $SERIN_BIN_DIR or the repository's bin/ (built by hack/tools.sh with
	// the Kubernetes discovery), else on PATH.
	Binary string
	// Dir holds the configuration, the TSDB and the log; a new temporary
	// directory when empty.
	Dir string
	// Kube is the API server pods are discovered from, with its TLS
	// material (file paths or inline data); nil discovers no pods.
	Kube *rest.Config
	// Namespaces limits pod discovery; empty discovers every namespace.
	Namespaces []string
	// PodPort is the name of the container port scraped on each pod
	// (default "http").
	PodPort string
	// ScrapeInterval is the scrape (and scrape timeout) interval; default 1s.
	ScrapeInterval time.Duration
	// LookbackDelta is --query.lookback-delta: how long an instant query
	// looks back for a sample (default 5s, so gone series vanish quickly).
	LookbackDelta time.Duration
	// BasicAuth, when set, protects every endpoint with a username and
	// password (bcrypt-hashed in the web configuration).
	BasicAuth *BasicAuth
	// PIDFile, when set, starts Prometheus in a session of its own so it
	// outlives the caller, and records its pid there.
	PIDFile string
	// StartTimeout bounds each start (default 1m).
	StartTimeout time.Duration
}

// BasicAuth is a username and password.
type BasicAuth struct {
	Username, Password string
}

// Prometheus is a running Prometheus.
type Prometheus struct {
	// URL is the base URL, e.g. http://127.0.0.1:34567.
	URL string
	// Dir holds the configuration, data and log.
	Dir string

	opts    Options
	addr    string
	logPath string
	api     promv1.API

	mu   sync.Mutex
	proc *cluster.Process
}

// Start writes the configuration, starts Prometheus on a free loopback
// port and waits until it is ready.
func Start(ctx context.Context, opts Options) (*Prometheus, error) {
	bin, err := findBinary(opts.Binary)
	if err != nil {
		return nil, err
	}
	opts.Binary = bin
	if opts.PodPort == "" {
		opts.PodPort = "http"
	}
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.LookbackDelta <= 0 {
		opts.LookbackDelta = 5 * time.Second
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = time.Minute
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "serin-prometheus-"); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"targets", tokenTargets} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	ports, err := cluster.FreePorts(1)
	if err != nil {
		return nil, err
	}
	p := &Prometheus{Dir: dir, opts: opts, addr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		logPath: filepath.Join(dir, "prometheus.log")}
	p.URL = "http://" + p.addr
	if err := p.writeConfig(); err != nil {
		return nil, err
	}
	cfg := api.Config{Address: p.URL}
	if opts.BasicAuth != nil {
		cfg.RoundTripper = basicAuthTransport{user: opts.BasicAuth.Username, pass: opts.BasicAuth.Password, base: api.DefaultRoundTripper}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	p.api = promv1.NewAPI(c)
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// writeConfig writes prometheus.yml, the web configuration and the TLS
// files the pod discovery needs.
func (p *Prometheus) writeConfig() error {
	o := p.opts
	iv := model.Duration(o.ScrapeInterval).String()
	global := map[string]any{"scrape_interval": iv, "scrape_timeout": iv, "evaluation_interval": iv}
	scrapes := []any{
		map[string]any{
			"job_name": "static",
			"file_sd_configs": []any{map[string]any{
				"files":            []string{filepath.Join(p.Dir, "targets", "*.json")},
				"refresh_interval": "1s",
			}},
		},
		// Targets that want a bearer token over HTTPS (serin's /metrics,
		// which signs its own certificate): SetTokenTargets.
		map[string]any{
			"job_name":      "static-token",
			"scheme":        "https",
			"tls_config":    map[string]any{"insecure_skip_verify": true},
			"authorization": map[string]any{"type": "Bearer", "credentials_file": filepath.Join(p.Dir, tokenFile)},
			"file_sd_configs": []any{map[string]any{
				"files":            []string{filepath.Join(p.Dir, tokenTargets, "*.json")},
				"refresh_interval": "1s",
			}},
		},
	}
	if err := writeNew(filepath.Join(p.Dir, tokenFile), nil); err != nil {
		return err
	}
	if o.Kube != nil {
		tlsCfg, err := p.kubeTLS()
		if err != nil {
			return err
		}
		sd := map[string]any{"role": "pod", "api_server": o.Kube.Host, "tls_config": tlsCfg}
		if len(o.Namespaces) > 0 {
			sd["namespaces"] = map[string]any{"names": o.Namespaces}
		}
		scrapes = append(scrapes, map[string]any{
			"job_name":              PodJob,
			"kubernetes_sd_configs": []any{sd},
			"relabel_configs": []any{
				// One target per pod: its port named PodPort, while it runs.
				map[string]any{"source_labels": []string{"__meta_kubernetes_pod_container_port_name"}, "regex": o.PodPort, "action": "keep"},
				map[string]any{"source_labels": []string{"__meta_kubernetes_pod_phase"}, "regex": "Running", "action": "keep"},
				map[string]any{"source_labels": []string{"__meta_kubernetes_namespace"}, "target_label": "namespace"},
				map[string]any{"source_labels": []string{"__meta_kubernetes_pod_name"}, "target_label": "pod"},
			},
		})
	}
	b, err := yaml.Marshal(map[string]any{"global": global, "scrape_configs": scrapes})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.Dir, "prometheus.yml"), b, 0o644); err != nil {
		return err
	}
	if o.BasicAuth == nil {
		return nil
	}
	// The cheapest cost keeps the per-request check fast; this protects
	// test data, not secrets.
	hash, err := bcrypt.GenerateFromPassword([]byte(o.BasicAuth.Password), bcrypt.MinCost)
	if err != nil {
		return err
	}
	web, err := yaml.Marshal(map[string]any{"basic_auth_users": map[string]string{o.BasicAuth.Username: string(hash)}})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.Dir, "web.yml"), web, 0o600)
}

// kubeTLS is the tls_config of the pod discovery: the rest.Config's files,
// or its inline data written next to the configuration.
func (p *Prometheus) kubeTLS() (map[string]any, error) {
	t := p.opts.Kube.TLSClientConfig
	cfg := map[string]any{}
	file := func(key, path string, data []byte, name string) error {
		switch {
		case path != "":
			cfg[key] = path
		case len(data) > 0:
			f := filepath.Join(p.Dir, name)
			if err := os.WriteFile(f, data, 0o600); err != nil {
				return err
			}
			cfg[key] = f
		}
		return nil
	}
	if err := errors.Join(
		file("ca_file", t.CAFile, t.CAData, "kube-ca.crt"),
		file("cert_file", t.CertFile, t.CertData, "kube-client.crt"),
		file("key_file", t.KeyFile, t.KeyData, "kube-client.key"),
	); err != nil {
		return nil, err
	}
	if t.Insecure {
		cfg["insecure_skip_verify"] = true
	}
	if p.opts.Kube.BearerToken != "" {
		return nil, errors.New("bearer-token kubeconfigs are not supported; use a client certificate")
	}
	return cfg, nil
}

// Start runs Prometheus (again, after Stop: same port, same data) and
// waits until it is ready.
func (p *Prometheus) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.proc != nil {
		p.mu.Unlock()
		return errors.New("prometheus already running")
	}
	args := []string{
		"--config.file=" + filepath.Join(p.Dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(p.Dir, "data"),
		"--storage.tsdb.retention.time=1d",
		"--web.listen-address=" + p.addr,
		"--query.lookback-delta=" + model.Duration(p.opts.LookbackDelta).String(),
		"--log.level=warn",
		// A counter first scraped after it began counting (a new canary
		// pod, or its first error) would lose what it counted before:
		// increase() starts at the first sample. podsim exposes created
		// timestamps, so Prometheus can put the zero where it belongs.
		"--enable-feature=created-timestamp-zero-ingestion",
	}
	if p.opts.BasicAuth != nil {
		args = append(args, "--web.config.file="+filepath.Join(p.Dir, "web.yml"))
	}
	proc, err := cluster.StartProcess("prometheus", p.opts.Binary, args, cluster.ProcessOptions{
		Log:     p.logPath,
		Header:  fmt.Sprintf("=== %s start %s", time.Now().Format(time.RFC3339Nano), strings.Join(args, " ")),
		Dir:     p.Dir,
		PIDFile: p.opts.PIDFile,
		Detach:  p.opts.PIDFile != "",
	})
	if err != nil {
		p.mu.Unlock()
		return err
	}
	p.proc = proc
	p.mu.Unlock()
	return p.waitReady(ctx, proc.Done())
}

func (p *Prometheus) waitReady(ctx context.Context, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, p.opts.StartTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/-/ready", nil)
		if err != nil {
			return err
		}
		if a := p.opts.BasicAuth; a != nil {
			req.SetBasicAuth(a.Username, a.Password)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			log := p.LogTail(20)
			if strings.Contains(log, "field kubernetes_sd_configs not found") {
				return fmt.Errorf("%s has no Kubernetes service discovery (Debian's build leaves it out); run hack/tools.sh prometheus", p.opts.Binary)
			}
			return fmt.Errorf("prometheus exited during start:\n%s", log)
		case <-ctx.Done():
			return fmt.Errorf("prometheus not ready: %w\n%s", ctx.Err(), p.LogTail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop ends Prometheus (SIGTERM, then SIGKILL after 10s). The data
// directory stays, so Start resumes with the same series.
func (p *Prometheus) Stop() {
	p.mu.Lock()
	proc := p.proc
	p.proc = nil
	p.mu.Unlock()
	if proc != nil {
		proc.Stop(10 * time.Second)
	}
}

// Running reports whether Prometheus runs.
func (p *Prometheus) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return false
	}
	exited, _ := p.proc.Exited()
	return !exited
}

// SetTargets makes Prometheus scrape the given host:port targets under the
// job name (through file-based discovery: no restart). No targets removes
// the job.
func (p *Prometheus) SetTargets(job string, targets ...string) error {
	return p.setTargets(filepath.Join(p.Dir, "targets", job+".json"), job, targets)
}

// SetTokenTargets is SetTargets for targets scraped over HTTPS (their
// certificates not verified) with a bearer token: the token of every such
// target, replaced by this call.
func (p *Prometheus) SetTokenTargets(job, token string, targets ...string) error {
	if err := writeAtomic(filepath.Join(p.Dir, tokenFile), []byte(token), 0o600); err != nil {
		return err
	}
	return p.setTargets(filepath.Join(p.Dir, tokenTargets, job+".json"), job, targets)
}

// tokenTargets is the directory of SetTokenTargets' targets, tokenFile
// their bearer token.
const (
	tokenTargets = "token-targets"
	tokenFile    = "scrape.token"
)

func (p *Prometheus) setTargets(path, job string, targets []string) error {
	if len(targets) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.Marshal([]map[string]any{{"targets": targets, "labels": map[string]string{"job": job}}})
	if err != nil {
		return err
	}
	return writeAtomic(path, b, 0o644)
}

// writeAtomic writes and renames, so Prometheus never reads half a file.
func writeAtomic(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeNew writes b to path unless the file exists (a restart keeps the
// token set before it).
func writeNew(path string, b []byte) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return writeAtomic(path, b, 0o600)
}

// API is a client of this Prometheus (with its credentials).
func (p *Prometheus) API() promv1.API { return p.api }

// Query runs an instant query now.
func (p *Prometheus) Query(ctx context.Context, query string) (model.Value, error) {
	v, warnings, err := p.api.Query(ctx, query, time.Now())
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", query, err)
	}
	if len(warnings) > 0 {
		return v, fmt.Errorf("query %s: warnings %v", query, warnings)
	}
	return v, nil
}

// Vector runs an instant query that must return an instant vector.
func (p *Prometheus) Vector(ctx context.Context, query string) (model.Vector, error) {
	v, err := p.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %s returned a %s, want a vector", query, v.Type())
	}
	return vec, nil
}

// WaitFor polls an instant query until ok accepts its vector, and returns
// that vector.
func (p *Prometheus) WaitFor(ctx context.Context, query string, ok func(model.Vector) bool) (model.Vector, error) {
	var last model.Vector
	var lastErr error
	for {
		vec, err := p.Vector(ctx, query)
		if err == nil && ok(vec) {
			return vec, nil
		}
		last, lastErr = vec, err
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("wait for %s: %w (last answer %v, error %v)", query, ctx.Err(), last, lastErr)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// ActiveTargets lists the scrape URLs of the healthy targets of a job.
func (p *Prometheus) ActiveTargets(ctx context.Context, job string) ([]string, error) {
	res, err := p.api.Targets(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range res.Active {
		if string(t.Labels[model.JobLabel]) == job && t.Health == promv1.HealthGood {
			out = append(out, t.ScrapeURL)
		}
	}
	return out, nil
}

// LogTail is the last n lines of Prometheus's log.
func (p *Prometheus) LogTail(n int) string { return cluster.Tail(p.logPath, n) }

type basicAuthTransport struct {
	user, pass string
	base       http.RoundTripper
}

func (b basicAuthTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.pass)
	return b.base.RoundTrip(r)
}

// findBinary resolves the prometheus executable: name if given, else
// bin/prometheus (hack/tools.sh builds it there), else PATH.
func findBinary(name string) (string, error) {
	if name != "" {
		return exec.LookPath(name)
	}
	if dir, err := cluster.DefaultBinDir(); err == nil {
		if p := filepath.Join(dir, "prometheus"); isExecutable(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath("prometheus")
	if err != nil {
		return "", fmt.Errorf("no prometheus in bin/ or on PATH: run hack/tools.sh prometheus: %w", err)
	}
	return p, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
