package harness

import (
	"context"
	"fmt"
	"strings"
)

// MetricsReaderRole is the ClusterRole the chart ships for scrapers of
// serin's /metrics (GET on the /metrics non-resource URL).
const MetricsReaderRole = "serin-metrics-reader"

// MetricsScraper is the ServiceAccount in Namespace that the tests and the
// demo scrape serin's /metrics as.
const MetricsScraper = "metrics-scraper"

// KubectlFunc runs kubectl with stdin and args against the cluster.
type KubectlFunc func(ctx context.Context, stdin string, args ...string) (string, error)

// ServiceAccountToken makes the ServiceAccount sa in Namespace, binds it
// to the ClusterRole role when role is not empty, and returns a token of
// it from the TokenRequest API (kubectl create token), valid for a day.
func ServiceAccountToken(ctx context.Context, kubectl KubectlFunc, sa, role string) (string, error) {
	objs := fmt.Sprintf("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: %s\n  namespace: %s\n", sa, Namespace)
	if role != "" {
		objs += fmt.Sprintf(`---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: %[1]s-%[2]s
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: %[2]s
subjects:
  - kind: ServiceAccount
    name: %[1]s
    namespace: %[3]s
`, sa, role, Namespace)
	}
	if _, err := kubectl(ctx, objs, "apply", "-f", "-"); err != nil {
		return "", fmt.Errorf("service account %s: %w", sa, err)
	}
	out, err := kubectl(ctx, "", "create", "token", sa, "-n", Namespace, "--duration=24h")
	if err != nil {
		return "", fmt.Errorf("token of %s: %w", sa, err)
	}
	return strings.TrimSpace(out), nil
}
