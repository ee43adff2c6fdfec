package install

import (
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/serin-dev/serin/integration/cluster"
)

func TestMain(m *testing.M) {
	// The webhook servers log through controller-runtime's global logger;
	// the tests log what matters themselves.
	ctrllog.SetLogger(logr.Discard())
	cluster.Main(m, cluster.Options{Nodes: 1})
}
