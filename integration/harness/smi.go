package harness

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

// InstallSMICRDs applies the SMI TrafficSplit CRD (testdata, written from
// the SMI specification) with the versions Linkerd's SMI extension serves,
// v1alpha2 stored, without Linkerd itself: serin writes TrafficSplits for
// provider linkerd, and nothing here routes on them.
func InstallSMICRDs(t testing.TB, c *cluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, file, _, _ := runtime.Caller(0)
	applyCRDs(ctx, t, c, filepath.Join(filepath.Dir(file), "testdata", "smi-trafficsplit-crd.yaml"), "trafficsplits.split.smi-spec.io")
}
