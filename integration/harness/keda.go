package harness

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

// InstallKEDACRD applies KEDA's ScaledObject CRD (testdata, from KEDA
// v2.16.1's config/crd/bases; Apache-2.0) without KEDA itself: serin only
// copies ScaledObjects, and nothing here scales on them.
func InstallKEDACRD(t testing.TB, c *cluster.Cluster) {
	t.Helper()
	installTestdataCRD(t, c, "keda.sh_scaledobjects.yaml", "scaledobjects.keda.sh")
}

// installTestdataCRD applies the CRD in the harness's testdata file and
// waits until name is established.
func installTestdataCRD(t testing.TB, c *cluster.Cluster, file, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, self, _, _ := runtime.Caller(0)
	applyCRDs(ctx, t, c, filepath.Join(filepath.Dir(self), "testdata", file), name)
}
