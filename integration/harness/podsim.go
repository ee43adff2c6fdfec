package harness

import (
	"context"
	"testing"

	"github.com/go-logr/logr"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/podsim"
)

// RunPodsim makes the pods of the given namespaces (all when none) answer
// while the test runs.
func RunPodsim(t testing.TB, c *cluster.Cluster, namespaces ...string) *podsim.Simulator {
	t.Helper()
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	sim := podsim.New(cs, podsim.Options{Namespaces: namespaces, Logger: logr.Discard()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sim.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return sim
}
