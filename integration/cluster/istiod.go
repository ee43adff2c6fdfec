package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IstiodOptions configure StartIstiod.
type IstiodOptions struct {
	// RootNamespace is the mesh's root namespace (default istio-system);
	// it is created when missing.
	RootNamespace string
	// MeshConfig is appended to the mesh configuration (YAML of Istio's
	// MeshConfig).
	MeshConfig string
	// Env is added to istiod's environment (Istio's feature flags).
	Env []string
}

// Istiod is Istio's control plane (pilot-discovery) running against the
// cluster's API server: no injection, no CA, no webhooks, plaintext xDS.
type Istiod struct {
	*Process
	// XDSAddress is the plaintext ADS address (Istio's 15010).
	XDSAddress string
	// MonitoringURL serves istiod's own metrics (Istio's 15014).
	MonitoringURL string
	// DebugURL serves istiod's debug endpoints and /ready (Istio's 8080).
	DebugURL string
	// RootNamespace is the mesh's root namespace.
	RootNamespace string
}

// StartIstiod runs pilot-discovery from BinDir against the cluster and
// waits until it is ready. Istio's CRDs must be installed first. It is
// stopped with the cluster (or by Kill).
func (c *Cluster) StartIstiod(ctx context.Context, opts IstiodOptions) (*Istiod, error) {
	if opts.RootNamespace == "" {
		opts.RootNamespace = "istio-system"
	}
	cs, err := c.Clientset()
	if err != nil {
		return nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: opts.RootNamespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create %s: %w", opts.RootNamespace, err)
	}
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.Dir, "istiod")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	mesh := filepath.Join(dir, "mesh.yaml")
	meshConfig := fmt.Sprintf("rootNamespace: %s\ntrustDomain: cluster.local\nenablePrometheusMerge: false\n%s", opts.RootNamespace, opts.MeshConfig)
	if err := os.WriteFile(mesh, []byte(meshConfig), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "networks.yaml"), []byte("networks: {}\n"), 0o644); err != nil {
		return nil, err
	}
	ist := &Istiod{
		XDSAddress:    fmt.Sprintf("127.0.0.1:%d", ports[0]),
		DebugURL:      fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		MonitoringURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[2]),
		RootNamespace: opts.RootNamespace,
	}
	args := []string{"discovery", "--kubeconfig=" + c.Kubeconfig, "--meshConfig=" + mesh,
		"--networksConfig=" + filepath.Join(dir, "networks.yaml"),
		"--grpcAddr=" + ist.XDSAddress, "--httpAddr=" + ist.DebugURL[len("http://"):],
		"--monitoringAddr=" + fmt.Sprintf("127.0.0.1:%d", ports[2]), "--httpsAddr=", "--secureGRPCAddr=",
		"--domain=cluster.local", "--clusterID=Kubernetes", "--log_output_level=default:info"}
	env := append([]string{
		"POD_NAME=istiod-0", "POD_NAMESPACE=" + opts.RootNamespace, "REVISION=default",
		"ENABLE_CA_SERVER=false", "PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER=false",
		"INJECTION_WEBHOOK_CONFIG_NAME=", "VALIDATION_WEBHOOK_CONFIG_NAME=", "PILOT_ENABLE_STATUS=false",
		"ISTIOD_CUSTOM_HOST=istiod." + opts.RootNamespace + ".svc",
	}, opts.Env...)
	p, err := StartProcess("istiod", filepath.Join(c.BinDir, "pilot-discovery"), args, ProcessOptions{
		Log: filepath.Join(c.Dir, "istiod.log"), Dir: dir, Env: env,
	})
	if err != nil {
		return nil, err
	}
	ist.Process = p
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if done, err := p.Exited(); done {
			return nil, fmt.Errorf("istiod exited (%v); last log lines:\n%s", err, Tail(p.LogPath, 30))
		}
		if req, err := http.NewRequestWithContext(ctx, http.MethodGet, ist.DebugURL+"/ready", nil); err == nil {
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return ist, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			p.Kill()
			return nil, fmt.Errorf("istiod not ready: %w; last log lines:\n%s", ctx.Err(), Tail(p.LogPath, 30))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
