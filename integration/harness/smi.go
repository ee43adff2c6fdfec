package harness

import (
	"testing"

	"github.com/serin-dev/serin/integration/cluster"
)

// InstallSMICRDs applies the SMI TrafficSplit CRD (testdata, written from
// the SMI specification) with the versions Linkerd's SMI extension serves,
// v1alpha2 stored, without Linkerd itself: serin writes TrafficSplits for
// provider linkerd, and nothing here routes on them.
func InstallSMICRDs(t testing.TB, c *cluster.Cluster) {
	t.Helper()
	installTestdataCRD(t, c, "smi-trafficsplit-crd.yaml", "trafficsplits.split.smi-spec.io")
}
