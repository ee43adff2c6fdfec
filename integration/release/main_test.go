// Package release holds the end-to-end tests of a release on the real
// local cluster: kubectl apply, the webhook hold, the canary copy, traffic
// measured by grpc-go xDS clients and a raw ADS observer, promotion,
// rollback, the Services hooks address, the serin CLI, restarts, opt-out
// and uninstall.
//
// One serin runs per cluster at a time (its webhook configuration is
// cluster-wide): TestReleases runs the scenarios that leave serin alone in
// parallel against one installation, each in its own namespace;
// TestRestartSafety (which kills serin) and TestUninstallMidRelease (which
// uninstalls it) install their own and run alone.
package release

import (
	"testing"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

func TestMain(m *testing.M) {
	cluster.Main(m, cluster.Options{Nodes: 3})
}

// TestReleases runs the release scenarios in parallel against one serin.
func TestReleases(t *testing.T) {
	s := harness.Install(t, cluster.Get(t), harness.Options{})
	for _, tc := range []struct {
		name string
		run  func(*testing.T, *harness.Serin)
	}{
		{"Promoted", testReleasePromoted},
		{"RollbackAndCLI", testRollbackAndCLI},
		{"OptOutMidRelease", testOptOutMidRelease},
		{"HPACopy", testHPACopy},
		{"ServicesForHooks", testServicesForHooks},
		{"ApexService", testApexService},
		{"ReadyThresholds", testReadyThresholds},
		{"ScaledObjectCopy", testScaledObjectCopy},
		{"ConfigRelease", testConfigRelease},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, s)
		})
	}
}
