// Package release holds the end-to-end tests of a release on the real
// local cluster: kubectl apply, the webhook hold, the canary copy, traffic
// measured by grpc-go xDS clients, promotion, rollback and restarts.
package release

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/podsim"
)

func TestMain(m *testing.M) {
	cluster.Main(m, cluster.Options{Nodes: 3})
}

// runPodsim makes the namespace's pods answer for the test's duration.
func runPodsim(t *testing.T, c *cluster.Cluster, ns string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	sim := podsim.New(cs, podsim.Options{Namespaces: []string{ns}, Logger: logr.Discard()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sim.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}
