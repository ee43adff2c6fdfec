package cluster

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var shared *Cluster

// Main runs a test package against one cluster, started before and stopped
// after its tests. Call it from TestMain. With -short no cluster starts and
// Get skips the tests that need one. When a test fails (or SERIN_KEEP_CLUSTER
// is set) the directory with every component's log is kept and printed.
func Main(m *testing.M, opts Options) {
	os.Exit(runMain(m, opts))
}

func runMain(m *testing.M, opts Options) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	c, err := Start(context.Background(), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration cluster:", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "integration cluster up in %s (%s)\n", c.StartDuration.Round(10*time.Millisecond), c.Dir)
	}
	shared = c
	code := m.Run()
	exitMu.Lock()
	for _, f := range atExit {
		f()
	}
	exitMu.Unlock()
	c.Stop()
	if code != 0 || os.Getenv("SERIN_KEEP_CLUSTER") != "" {
		fmt.Fprintf(os.Stderr, "integration cluster logs kept in %s\n", c.Dir)
		if code != 0 {
			for _, name := range components {
				fmt.Fprintf(os.Stderr, "--- last lines of %s.log\n%s\n", name, Tail(filepath.Join(c.Dir, name+".log"), 8))
			}
		}
	} else {
		_ = c.Remove()
	}
	return code
}

// atExit runs when the package's tests are done (OnExit).
var (
	exitMu sync.Mutex
	atExit []func()
)

// OnExit runs f once the package's tests are done, before the cluster
// stops: to remove what a suite made outside it (a built binary).
func OnExit(f func()) {
	exitMu.Lock()
	defer exitMu.Unlock()
	atExit = append(atExit, f)
}

// Get returns the package's cluster, or skips the test when there is none
// (-short).
func Get(t testing.TB) *Cluster {
	t.Helper()
	if shared == nil {
		t.Skip("needs the local cluster (skipped with -short)")
	}
	return shared
}

// Namespace creates a namespace of the test's own and deletes it when the
// test ends. It returns once the namespace's default service account exists,
// so pods can be created in it straight away.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	prefix := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: strings.Trim(prefix, "-") + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	// The service account admission plugin refuses pods until the
	// controller-manager has created the namespace's default account.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.waitFor(ctx, "service account "+ns.Name+"/default", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// Kubectl runs the cluster's kubectl with the admin kubeconfig; stdin may
// be empty. It returns stdout, and an error with stderr when it fails.
func (c *Cluster) Kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	return Kubectl(ctx, filepath.Join(c.BinDir, "kubectl"), c.Kubeconfig, stdin, args...)
}
