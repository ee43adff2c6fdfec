package harness

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// CCorePython is Debian's interpreter, the one Debian's python3-grpcio is
// built for (another python3 may come first in PATH).
const CCorePython = "/usr/bin/python3"

// ccoreClientPy is the client program: gRPC C-core's xDS resolver and
// balancers behind the Python binding, measuring who answers.
//
//go:embed ccore/xdsclient.py
var ccoreClientPy []byte

// CCoreVersion is the version of gRPC C-core Debian's interpreter
// imports, or an error when it imports none.
func CCoreVersion(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, CCorePython, "-I", "-c", "import grpc; print(grpc.__version__)").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s cannot import grpc: %w: %s", CCorePython, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// NeedCCore skips the test when python3-grpcio is not installed, or fails
// it when CI is set (CI installs it: make test-deps), and logs C-core's
// version.
func NeedCCore(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := CCoreVersion(ctx)
	if err != nil {
		msg := fmt.Sprintf("gRPC C-core is not installed (%v): run make test-deps as root, or apt-get install python3-grpcio", err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Logf("gRPC C-core %s (Debian's python3-grpcio)", v)
}

// CCoreClient is one long-lived gRPC C-core channel to an xds:/// target,
// bootstrapped to serin's xDS server like the grpc-go clients (same node
// and cluster, same client certificate), in its own process: an
// independent xDS implementation as the data plane.
type CCoreClient struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	logPth string
	relay  *tlsRelay

	mu       sync.Mutex
	closeErr error
	closed   bool
}

// NewCCoreClient starts a C-core client of target (<svc>.<ns>:<port>) with
// a client certificate for the target's namespace when serin serves mutual
// TLS, and waits for its first answer; it is closed when the test ends.
func NewCCoreClient(t testing.TB, xdsAddress, nodeID, target string) *CCoreClient {
	t.Helper()
	NeedCCore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	creds, err := XDSCredentialsFor(ctx, xdsAddress, TargetNamespace(target))
	if err != nil {
		t.Fatal(err)
	}
	c, err := StartCCoreClient(ctx, t.TempDir(), xdsAddress, nodeID, target, creds)
	return closedAtEnd(t, c, err)
}

// closedAtEnd is c, closed when the test ends, or the test's failure.
func closedAtEnd(t testing.TB, c *CCoreClient, err error) *CCoreClient {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("gRPC C-core client: %v", err)
		}
	})
	return c
}

// NewIstiodCCoreClient is a C-core client of target bootstrapped to istiod
// as Istio's proxyless gRPC clients are (istiodBootstrap).
func NewIstiodCCoreClient(t testing.TB, istiodAddress, ns, target string) *CCoreClient {
	t.Helper()
	NeedCCore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := startCCore(ctx, t.TempDir(), nil, []string{"xds:///" + target}, "GRPC_XDS_BOOTSTRAP_CONFIG="+istiodBootstrap(istiodAddress, ns))
	return closedAtEnd(t, c, err)
}

// StartCCoreClient starts the client program in dir (its copy and its
// log go there) and waits until its first call through xDS is answered.
func StartCCoreClient(ctx context.Context, dir, xdsAddress, nodeID, target string, creds XDSCredentials) (*CCoreClient, error) {
	serverURI := xdsAddress
	var relay *tlsRelay
	if creds.Dir != "" {
		cfg, err := creds.tlsConfig()
		if err != nil {
			return nil, err
		}
		if relay, err = startTLSRelay(xdsAddress, cfg); err != nil {
			return nil, err
		}
		serverURI = relay.Addr()
	}
	bootstrap := xdsBootstrap(serverURI, `[{"type": "insecure"}]`, nodeID)
	c, err := startCCore(ctx, dir, relay, []string{"xds:///" + target}, "GRPC_XDS_BOOTSTRAP_CONFIG="+bootstrap)
	if err != nil && relay != nil {
		_ = relay.Close()
	}
	return c, err
}

// startCCore runs the program in serve mode with the given arguments and
// extra environment, and waits for its first answer; relay, if any, is
// closed with the client.
func startCCore(ctx context.Context, dir string, relay *tlsRelay, args []string, env ...string) (*CCoreClient, error) {
	script := filepath.Join(dir, "xdsclient.py")
	if err := os.WriteFile(script, ccoreClientPy, 0o600); err != nil {
		return nil, err
	}
	c := &CCoreClient{lines: make(chan string, 1), logPth: filepath.Join(dir, "xdsclient.log")}
	if err := c.start(append([]string{"-I", script, "--serve"}, args...), env); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	c.relay = relay
	return c, nil
}

// start runs the interpreter with args, gRPC's settings only from env.
func (c *CCoreClient) start(args, env []string) error {
	logf, err := os.Create(c.logPth)
	if err != nil {
		return err
	}
	defer logf.Close()
	c.cmd = exec.Command(CCorePython, args...)
	c.cmd.Env = append(grpcFreeEnv(), env...)
	c.cmd.Stderr = logf
	// The client dies with the test process.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start gRPC C-core client: %w", err)
	}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return nil
}

// grpcFreeEnv is this process's environment without gRPC's settings, so
// that only the bootstrap given configures the client.
func grpcFreeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GRPC_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady waits for the program's first line: ready, or why not.
func (c *CCoreClient) waitReady(ctx context.Context) error {
	line, err := c.next(ctx)
	if err != nil {
		return err
	}
	var ready struct {
		Ready      bool   `json:"ready"`
		SetupError string `json:"setup_error"`
	}
	if err := json.Unmarshal([]byte(line), &ready); err != nil || !ready.Ready {
		return fmt.Errorf("gRPC C-core client not ready: %s; log:\n%s", line, c.logTail())
	}
	return nil
}

// next is the program's next output line.
func (c *CCoreClient) next(ctx context.Context) (string, error) {
	select {
	case line, ok := <-c.lines:
		if !ok {
			return "", fmt.Errorf("gRPC C-core client exited; log:\n%s", c.logTail())
		}
		return line, nil
	case <-ctx.Done():
		return "", fmt.Errorf("gRPC C-core client: %w; log:\n%s", ctx.Err(), c.logTail())
	}
}

// ccoreResult is one measurement as the program prints it.
type ccoreResult struct {
	Calls     int            `json:"calls"`
	Versions  map[string]int `json:"versions"`
	Pods      map[string]int `json:"pods"`
	Errors    int            `json:"errors"`
	LastError string         `json:"last_error"`
}

// Send makes n fail-fast UnaryCalls over the client's one channel, with
// the given request metadata (key, value pairs), and tallies who answered
// (failed calls count in Errors only).
func (c *CCoreClient) Send(ctx context.Context, n int, md ...string) (Tally, error) {
	if len(md)%2 != 0 {
		return Tally{}, errors.New("metadata: want key, value pairs")
	}
	req := struct {
		N        int               `json:"n"`
		Metadata map[string]string `json:"metadata,omitempty"`
	}{N: n}
	for i := 0; i < len(md); i += 2 {
		if req.Metadata == nil {
			req.Metadata = map[string]string{}
		}
		req.Metadata[md[i]] = md[i+1]
	}
	b, err := json.Marshal(req)
	if err != nil {
		return Tally{}, err
	}
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		return Tally{}, fmt.Errorf("gRPC C-core client: %w", err)
	}
	line, err := c.next(ctx)
	if err != nil {
		return Tally{}, err
	}
	var res ccoreResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return Tally{}, fmt.Errorf("gRPC C-core client answered %q: %w", line, err)
	}
	if res.Calls != n {
		return Tally{}, fmt.Errorf("gRPC C-core client made %d calls, not %d", res.Calls, n)
	}
	t := Tally{Versions: res.Versions, Pods: res.Pods, Errors: res.Errors}
	if res.LastError != "" {
		t.LastErr = errors.New(res.LastError)
	}
	return t, nil
}

// Close ends the program (its channel closes when its stdin ends) and the
// relay; an exit status other than 0 is an error.
func (c *CCoreClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.closeErr
	}
	c.closed = true
	if c.cmd != nil && c.cmd.Process != nil {
		c.stdin.Close()
		go func() {
			for range c.lines { //nolint:revive // drain: the reader ends with the program's output
			}
		}()
		exited := make(chan error, 1)
		go func() { exited <- c.cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				c.closeErr = fmt.Errorf("gRPC C-core client: %w; log:\n%s", err, c.logTail())
			}
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-exited
			c.closeErr = fmt.Errorf("gRPC C-core client did not exit; log:\n%s", c.logTail())
		}
	}
	if c.relay != nil {
		_ = c.relay.Close()
	}
	return c.closeErr
}

// logTail is the end of the program's stderr (C-core's own log).
func (c *CCoreClient) logTail() string {
	b, _ := os.ReadFile(c.logPth)
	const tail = 4000
	if len(b) > tail {
		b = b[len(b)-tail:]
	}
	return string(b)
}
