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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, file, _, _ := runtime.Caller(0)
	applyCRDs(ctx, t, c, filepath.Join(filepath.Dir(file), "testdata", "keda.sh_scaledobjects.yaml"), "scaledobjects.keda.sh")
}
