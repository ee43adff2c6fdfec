package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

// Tester is a `serin tester` process, the hook companion Canaries call as
// Flagger users call its load tester.
type Tester struct {
	// URL is where it answers, http://127.0.0.1:<port>.
	URL string
}

// StartTester runs the real `serin tester` binary on a free loopback port
// until the test ends, with extra flags (e.g. --allow-bash), and waits
// until it answers.
func StartTester(t testing.TB, args ...string) *Tester {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	ports, err := cluster.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	args = append([]string{"tester", "--address", addr, "--log-format", "console", "--timeout", "1m"}, args...)
	proc, err := cluster.StartProcess("serin tester", bin, args, cluster.ProcessOptions{Log: filepath.Join(t.TempDir(), "tester.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Stop(10 * time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(proc.LogPath)
			t.Logf("serin tester log:\n%s", b)
		}
	})
	tt := &Tester{URL: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(tt.URL + "/healthz") //nolint:noctx // local probe
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return tt
			}
		}
		select {
		case <-proc.Done():
			b, _ := os.ReadFile(proc.LogPath)
			t.Fatalf("serin tester exited:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("serin tester not ready after 30s")
		}
	}
}

// Post calls a tester endpoint (a gate: /gate/open, /rollback/check, …)
// for the Canary name in namespace, as a person would with curl, and
// returns the status code.
func (tt *Tester) Post(t testing.TB, path, name, namespace string) int {
	t.Helper()
	body := fmt.Sprintf(`{"name":%q,"namespace":%q}`, name, namespace)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, tt.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
