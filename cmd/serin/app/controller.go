package app

import (
	"context"
	"fmt"
	"os"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/serin-dev/serin/admission/certs"
)

// controllerOptions are the flags of serin controller.
type controllerOptions struct {
	namespace         string
	webhookHost       string
	webhookPort       int
	webhookCertMode   string
	webhookCertDir    string
	webhookSecret     string
	webhookService    string
	webhookConfigName string
	webhookIPs        []string
	xdsAddress        string
	metricsAddress    string
	metricsSecure     bool
	metricsCertDir    string
	healthAddress     string
	leaderElect       bool
	prometheusAddress string
	hookAllowedHosts  []string
	egressAllow       []string
	minProxies        int32
	meshProvider      string
	istiodDebugURL    string
	logLevel          string
	logFormat         string
	istioMode         string
	istioXDSAddress   string
	istioMeshWide     bool
	istioBootstrapNS  []string
	watchNamespaces   []string
	replicaName       string
	xdsTLSCert        string
	xdsTLSKey         string
	xdsClientCA       string
	flaggerMetrics    bool
	configTracking    bool
	xdsPlaintext      bool
	xdsService        string
	flaggerCompat     bool
	pprofAddress      string
	kubeAPIQPS        float32
	kubeAPIBurst      int
}

func newControllerCmd(conn *connFlags) *cobra.Command {
	o := controllerOptions{}
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run serin: the admission webhooks, the release engine, the xDS server and analysis",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runController(cmd.Context(), conn, o)
		},
	}
	f := cmd.Flags()
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "serin-system"
	}
	f.StringVar(&o.namespace, "namespace", ns, "serin's own namespace (leases, webhook Secret)")
	f.StringVar(&o.webhookHost, "webhook-host", "", "address the webhook server binds (empty: all)")
	f.IntVar(&o.webhookPort, "webhook-port", 9443, "webhook server port")
	f.StringVar(&o.webhookCertMode, "webhook-cert-mode", "builtin", "builtin (serin's own CA and rotation) or dir (certificates mounted in --webhook-cert-dir, e.g. by cert-manager)")
	f.StringVar(&o.webhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with tls.crt and tls.key (dir mode)")
	f.StringVar(&o.webhookSecret, "webhook-secret", certs.DefaultSecretName, "Secret holding the built-in CA and serving certificate")
	f.StringVar(&o.webhookService, "webhook-service", certs.DefaultServiceName, "Service name the serving certificate is issued for")
	f.StringVar(&o.webhookConfigName, "webhook-config-name", certs.DefaultWebhookConfigName, "name of the webhook configurations whose caBundle serin keeps")
	f.StringSliceVar(&o.webhookIPs, "webhook-ip", nil, "extra IP SANs of the serving certificate (loopback url mode)")
	f.StringVar(&o.xdsAddress, "xds-address", ":18000", "xDS gRPC listen address")
	f.StringVar(&o.metricsAddress, "metrics-address", ":8080", "Prometheus metrics address (0 disables)")
	f.BoolVar(&o.flaggerMetrics, "flagger-metrics", false, "also export the release metrics under Flagger's names and labels (flagger_canary_status, flagger_canary_weight, ...) for Flagger's dashboards and alerts")
	f.BoolVar(&o.metricsSecure, "metrics-secure", true, "serve /metrics over HTTPS to callers the API server authenticates and authorizes (GET on the /metrics non-resource URL); false serves plain HTTP to anyone")
	f.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "directory with tls.crt and tls.key for /metrics (reloaded on change); empty: a self-signed certificate made at start")
	f.StringVar(&o.healthAddress, "health-address", ":8081", "health probe address")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "elect a leader to run the release engine")
	f.StringVar(&o.prometheusAddress, "prometheus-address", "", "Prometheus for the built-in metrics and templates without an address (its host is allowed to metric providers whatever the egress policy)")
	f.StringSliceVar(&o.hookAllowedHosts, "hook-allowed-hosts", nil, "hosts webhooks may call: host, host:port or *.suffix (empty: any host --egress-allow's policy allows)")
	f.StringSliceVar(&o.egressAllow, "egress-allow", nil, "CIDRs, IPs and host names (*.suffix) hooks, alerts and metric providers may reach although they are loopback, link-local, metadata or otherwise refused addresses (the API server only by its exact IP)")
	f.BoolVar(&o.configTracking, "config-tracking", true, "make the ConfigMaps and Secrets an opted-in Deployment references part of its revision: a change of their content is a release, and pods read immutable snapshots of their revision's content (an object annotated serin.dev/config-tracking: disabled or flagger.app/config-tracking: disabled is left out)")
	f.Int32Var(&o.minProxies, "min-proxies", 0, "default of a Canary's spec.minProxies: proxies that must apply a traffic change before it counts as applied (0: none needed; the TrafficApplied condition says NoProxies)")
	f.StringVar(&o.meshProvider, "mesh-provider", "", "default of a Canary's spec.provider: empty, istio or kubernetes (serin's own xDS server), gatewayapi:v1 (a Gateway API HTTPRoute serin writes) or linkerd (an SMI TrafficSplit)")
	f.StringVar(&o.istiodDebugURL, "istiod-debug-url", "", "istiod's debug address (e.g. http://istiod.istio-system:15014): a Gateway API route istiod accepted counts as applied only once istiod's proxies acknowledged the change (/debug/syncz)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info or error")
	f.StringVar(&o.logFormat, "log-format", "json", "json or console")
	f.StringVar(&o.istioMode, "istio-mode", "none", "none, bootstrap (Istio's Envoys reach serin through a bootstrap cluster) or google-grpc")
	f.StringVar(&o.istioXDSAddress, "istio-xds-address", "", "host:port Istio's Envoys use to reach serin's xDS server")
	f.BoolVar(&o.istioMeshWide, "istio-mesh-wide-sidecars", false, "write a release's sidecar EnvoyFilter to Istio's root namespace, so clients in every namespace take part (default: the release's namespace, its own clients only)")
	f.StringVar(&o.xdsTLSCert, "xds-tls-cert", "", "serving certificate of the xDS server (PEM), hot-reloaded; default: the webhook certificate (builtin or dir mode)")
	f.StringSliceVar(&o.istioBootstrapNS, "istio-bootstrap-namespaces", nil, "bootstrap mode: namespaces where serin keeps its bootstrap-override ConfigMap (its RBAC must allow it there)")
	f.StringSliceVar(&o.watchNamespaces, "watch-namespaces", nil, "namespaces serin watches and acts in (empty: the whole cluster); every informer is then namespaced")
	f.StringVar(&o.xdsTLSKey, "xds-tls-key", "", "private key of --xds-tls-cert")
	f.StringVar(&o.xdsClientCA, "xds-client-ca", "", "more CAs (PEM) that proxies' client certificates may chain to, e.g. Istio's root (istio-ca-root-cert); serin's own CA is always trusted")
	f.BoolVar(&o.xdsPlaintext, "xds-plaintext", false, "serve xDS in plaintext, without client authentication or access control (any client gets every release)")
	f.StringVar(&o.xdsService, "xds-service", "serin-xds", "xDS Service name the builtin serving certificate is also issued for")
	f.BoolVar(&o.flaggerCompat, "flagger-compat", false, "run flagger.app/v1beta1 Canaries (their CRDs must be installed: the chart's flagger.compat)")
	f.Float32Var(&o.kubeAPIQPS, "kube-api-qps", 50, "requests a second serin may send the API server (client-side limit; raise it with hundreds of releases running at once)")
	f.IntVar(&o.kubeAPIBurst, "kube-api-burst", 100, "requests serin may send the API server in a burst above --kube-api-qps")
	f.StringVar(&o.pprofAddress, "pprof-address", "", "serve Go's profiles (/debug/pprof/, unauthenticated) on this address, e.g. 127.0.0.1:6060 (empty: off)")
	f.StringVar(&o.replicaName, "replica-name", defaultReplicaName(), "this replica's name (the pod name), under which it shares what its proxies applied")
	return cmd
}

// runController wires serin's parts into one manager and runs it until
// ctx ends.
func runController(ctx context.Context, conn *connFlags, o controllerOptions) error {
	if err := checkXDSFlags(o); err != nil {
		return &exitError{code: 2, err: err}
	}
	log, cfg, err := setupLogAndConfig(conn, o)
	if err != nil {
		return err
	}
	ctx = logr.NewContext(ctx, log)
	whOpts, rotator, err := webhookServerOptions(cfg, o, log)
	if err != nil {
		return err
	}
	mgr, err := newManager(ctx, cfg, o, log, whOpts)
	if err != nil {
		return err
	}
	if err := setupPprof(mgr, o.pprofAddress, log); err != nil {
		return err
	}
	if err := setupWebhooks(mgr, o, rotator, log); err != nil {
		return err
	}
	t, err := setupTraffic(mgr, o, rotator, log)
	if err != nil {
		return err
	}
	if err := setupEngine(ctx, mgr, o, log, t); err != nil {
		return err
	}
	if err := setupFlaggerCompat(mgr, o, log); err != nil {
		return err
	}
	log.Info("starting serin", "version", Version, "namespace", o.namespace, "xds", o.xdsAddress, "webhookPort", o.webhookPort)
	return mgr.Start(ctx)
}

// defaultReplicaName is the pod name in a cluster, else host and process.
func defaultReplicaName() string {
	if n := os.Getenv("POD_NAME"); n != "" {
		return n
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
