// Package providers runs MetricTemplates of the providers Debian packages
// against the real servers: InfluxDB 1.x (InfluxQL) and Graphite
// (carbon-cache writing whisper files, graphite-web's render API), each
// started on loopback ports in a temporary directory. The packages are
// installed by make test-deps; without them the tests skip, or fail when
// CI is set.
package providers

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

// systemPython is Debian's interpreter, which has graphite-web's and
// carbon's modules (a python3 earlier on PATH may not).
const systemPython = "/usr/bin/python3"

// graphiteWSGI is installed by the graphite-web package.
const graphiteWSGI = "/usr/lib/python3/dist-packages/graphite/wsgi.py"

// need skips the test when a file or binary of a Debian package is
// missing, or fails it when CI is set (CI installs them: make test-deps).
func need(t *testing.T, pkg string, paths ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real servers (skipped with -short)")
	}
	for _, p := range paths {
		var err error
		if filepath.IsAbs(p) {
			_, err = os.Stat(p)
		} else {
			_, err = exec.LookPath(p)
		}
		if err == nil {
			continue
		}
		msg := fmt.Sprintf("%s is not installed (%s missing): run make test-deps as root, or apt-get install %s", pkg, p, pkg)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// start runs a server until the test ends; its output goes to log.
func start(t *testing.T, dir, log string, env []string, name string, args ...string) {
	t.Helper()
	out, err := os.Create(filepath.Join(dir, log))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		out.Close()
	})
}

// waitFor polls ready until it holds or the test's wait budget ends.
func waitFor(t *testing.T, what, logFile string, ready func(ctx context.Context) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for !ready(ctx) {
		select {
		case <-ctx.Done():
			t.Fatalf("%s not ready: %v\n%s", what, ctx.Err(), cluster.Tail(logFile, 20))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func httpOK(ctx context.Context, url string, codes ...int) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	for _, c := range codes {
		if resp.StatusCode == c {
			return true
		}
	}
	return false
}

func ports(t *testing.T, n int) []int {
	t.Helper()
	p, err := cluster.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// InfluxAdmin and InfluxAdminPassword are the admin StartInfluxDB
// creates.
const (
	InfluxAdmin         = "admin"
	InfluxAdminPassword = "admin-pw"
)

// StartInfluxDB runs influxd with authentication on, creates the admin
// and database db, and returns its URL.
func StartInfluxDB(t *testing.T, db string) string {
	need(t, "influxdb", "influxd")
	dir := t.TempDir()
	p := ports(t, 2)
	write(t, filepath.Join(dir, "influxdb.conf"), fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  auth-enabled = true
  log-enabled = false
[monitor]
  store-enabled = false
`, p[0], filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), p[1]))
	start(t, dir, "influxd.log", nil, "influxd", "run", "-config", filepath.Join(dir, "influxdb.conf"))
	base := fmt.Sprintf("http://127.0.0.1:%d", p[1])
	waitFor(t, "influxd", filepath.Join(dir, "influxd.log"), func(ctx context.Context) bool {
		return httpOK(ctx, base+"/ping", http.StatusNoContent)
	})
	InfluxQL(t, base, fmt.Sprintf("CREATE USER %s WITH PASSWORD '%s' WITH ALL PRIVILEGES", InfluxAdmin, InfluxAdminPassword))
	InfluxQL(t, base, "CREATE DATABASE "+db)
	return base
}

// InfluxQL runs a statement as the admin and fails the test on an error.
func InfluxQL(t *testing.T, base, q string) {
	t.Helper()
	influxDo(t, base+"/query", url.Values{"q": {q}}, "")
}

// InfluxWrite writes points in line protocol (timestamps in seconds) to
// db as the admin.
func InfluxWrite(t *testing.T, base, db, lines string) {
	t.Helper()
	influxDo(t, base+"/write", url.Values{"db": {db}, "precision": {"s"}}, lines)
}

func influxDo(t *testing.T, endpoint string, params url.Values, body string) {
	t.Helper()
	params.Set("u", InfluxAdmin)
	params.Set("p", InfluxAdminPassword)
	resp, err := http.Post(endpoint+"?"+params.Encode(), "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 || strings.Contains(string(out), `"error"`) {
		t.Fatalf("influxdb %s: %s %s", params.Get("q"), resp.Status, out)
	}
}

// startGraphite runs carbon-cache (plaintext receiver, whisper files) and
// graphite-web's WSGI application; it returns the render API's URL and
// the carbon line receiver's address.
func startGraphite(t *testing.T) (web, carbon string) {
	need(t, "graphite-carbon", "carbon-cache")
	need(t, "graphite-web", systemPython, graphiteWSGI)
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage") + "/"
	for _, d := range []string{"whisper", "log", "conf"} {
		if err := os.MkdirAll(filepath.Join(storage, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := ports(t, 4) // line, pickle, cache query, web
	conf := filepath.Join(storage, "conf")
	write(t, filepath.Join(conf, "carbon.conf"), fmt.Sprintf(`[cache]
LOCAL_DATA_DIR = %[1]swhisper/
STORAGE_DIR = %[1]s
LOG_DIR = %[1]slog/
PID_DIR = %[1]s
DATABASE = whisper
ENABLE_LOGROTATION = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 1000
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %[2]d
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = %[3]d
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = %[4]d
WHISPER_AUTOFLUSH = True
`, storage, p[0], p[1], p[2]))
	write(t, filepath.Join(conf, "storage-schemas.conf"), "[default]\npattern = .*\nretentions = 10s:1d\n")
	write(t, filepath.Join(dir, "serin_graphite_settings.py"), fmt.Sprintf(`SECRET_KEY = 'serin-test'
STORAGE_DIR = %[1]q
WHISPER_DIR = %[1]q + 'whisper/'
LOG_DIR = %[1]q + 'log/'
INDEX_FILE = %[1]q + 'index'
CARBONLINK_HOSTS = ['127.0.0.1:%[2]d']
DATABASES = {'default': {'NAME': %[1]q + 'graphite.db', 'ENGINE': 'django.db.backends.sqlite3'}}
`, storage, p[2]))
	start(t, dir, "carbon.log", nil, systemPython, "/usr/bin/carbon-cache", "--config="+filepath.Join(conf, "carbon.conf"),
		"--nodaemon", "--debug", "start")
	serve := fmt.Sprintf(`from wsgiref.simple_server import make_server, WSGIRequestHandler
from graphite.wsgi import application
class Quiet(WSGIRequestHandler):
    def log_message(self, *args): pass
make_server('127.0.0.1', %d, application, handler_class=Quiet).serve_forever()
`, p[3])
	start(t, dir, "graphite-web.log", []string{"PYTHONPATH=" + dir, "GRAPHITE_SETTINGS_MODULE=serin_graphite_settings"},
		systemPython, "-c", serve)
	carbon = fmt.Sprintf("127.0.0.1:%d", p[0])
	web = fmt.Sprintf("http://127.0.0.1:%d", p[3])
	waitFor(t, "carbon-cache", filepath.Join(dir, "carbon.log"), func(ctx context.Context) bool {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", carbon)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	waitFor(t, "graphite-web", filepath.Join(dir, "graphite-web.log"), func(ctx context.Context) bool {
		return httpOK(ctx, web+"/render?target=none&format=json", http.StatusOK)
	})
	return web, carbon
}

// sendCarbon writes points in carbon's plaintext protocol: "path value
// timestamp" lines.
func sendCarbon(t *testing.T, carbon string, lines ...string) {
	t.Helper()
	c, err := net.Dial("tcp", carbon)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprint(c, strings.Join(lines, "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
}
