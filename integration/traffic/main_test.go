// Package traffic holds the end-to-end tests of serin's embedded xDS
// control plane on the real local cluster: grpc-go's own xDS client
// (bootstrapped to serin) calling podsim's gRPC pods through releases that
// serin drives, at every weight step, under A/B matches, rollback, pod
// readiness changes, a configuration the client rejects and a restart of
// serin; gRPC C-core's xDS client (Debian's python3-grpcio), an
// independent implementation, measuring weights and an A/B match; the EnvoyFilters serin writes for Istio against the API server
// with Istio's CRDs installed; and a real Envoy where one is on PATH.
//
// One serin serves the whole package (the webhook configuration is
// cluster-wide): TestTraffic installs it, runs the scenarios that restart
// serin or count its xDS sends one after the other, then the others in
// parallel, each in a namespace of its own. serin runs in Istio google_grpc
// mode throughout, so every release also gets its EnvoyFilters written.
package traffic

import (
	"testing"

	"github.com/serin-dev/serin/integration/cluster"
)

func TestMain(m *testing.M) {
	cluster.Main(m, cluster.Options{Nodes: 3})
}

// TestTraffic runs every scenario that needs serin against one serin.
func TestTraffic(t *testing.T) {
	e := setup(t)
	// These restart serin, count its sends or subscribe to everything:
	// nothing else may run meanwhile.
	t.Run("Restart", func(t *testing.T) { testRestart(t, e) })
	t.Run("NACK", func(t *testing.T) { testNACK(t, e) })
	// Counts NACKs and dropped load reports: alone as well.
	t.Run("Security", func(t *testing.T) { testSecurity(t, e) })
	// Envoy subscribes to every cluster (wildcard CDS): run it alone too.
	t.Run("Envoy", func(t *testing.T) { testEnvoy(t, e) })
	t.Run("Parallel", func(t *testing.T) {
		for _, sc := range []struct {
			name string
			fn   func(*testing.T, *env)
		}{
			{"Weights", testWeights},
			{"ABHeader", testABHeader},
			{"CCoreWeights", testCCoreWeights},
			{"CCoreABHeader", testCCoreABHeader},
			{"ABConditions", testABConditions},
			{"ConsistentHash", testConsistentHash},
			{"Rollback", testRollback},
			{"UnreadyPod", testUnreadyPod},
			{"IstioWriter", testIstioWriter},
			{"Cutover", testCutover},
			{"NewRevisionDuringPromotion", testNewRevisionDuringPromotion},
			{"RestartBehindClosedGate", testRestartBehindClosedGate},
			{"NoProxies", testNoProxies},
			{"DeleteMidRelease", testDeleteMidRelease},
			{"GatewayAPI", testGatewayAPI},
		} {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				sc.fn(t, e)
			})
		}
	})
}
