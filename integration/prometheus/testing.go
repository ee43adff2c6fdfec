package prometheus

import (
	"context"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

// Run starts a Prometheus that discovers the cluster's pods and stops it
// when the test ends; opts.Kube defaults to the cluster's admin config.
// With -short (no cluster) the test is skipped by cluster.Get beforehand.
func Run(t testing.TB, c *cluster.Cluster, opts Options) *Prometheus {
	t.Helper()
	if opts.Kube == nil {
		opts.Kube = c.Config
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("prometheus %s log:\n%s", p.URL, p.LogTail(20))
		}
	})
	return p
}
