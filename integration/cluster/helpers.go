package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// FreePorts reserves n free loopback ports and releases them for use.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Tail is the last n lines of a file ("" when it cannot be read).
func Tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Run runs a command with stdin (none when empty) and returns its stdout;
// when it fails, the error names the command and carries its stderr.
func Run(ctx context.Context, stdin, name string, args ...string) (string, error) {
	return run(ctx, stdin, name, args, args)
}

// Kubectl runs the kubectl binary with a kubeconfig, as Run does.
func Kubectl(ctx context.Context, kubectl, kubeconfig, stdin string, args ...string) (string, error) {
	return run(ctx, stdin, kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...), args)
}

// run runs name with args; errors show it with shown instead.
func run(ctx context.Context, stdin, name string, args, shown []string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(shown, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// RepoRoot is the nearest directory above the working directory whose
// go.mod declares serin's module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/serin-dev/serin\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("serin's repository root not found above the working directory")
		}
		dir = parent
	}
}

// DefaultBinDir is where the tools built by `make tools` are:
// $SERIN_BIN_DIR, else bin/ at the repository root.
func DefaultBinDir() (string, error) {
	if dir := os.Getenv("SERIN_BIN_DIR"); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}

// ModuleDir is the directory of a module of serin's build list in the
// module cache.
func ModuleDir(module string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "list", "-m", "-json", module)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", fmt.Errorf("%s is not in the module cache (run go mod download): %v %s", module, err, out)
	}
	return m.Dir, nil
}
