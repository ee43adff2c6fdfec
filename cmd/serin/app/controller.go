package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/serin-dev/serin/admission"
	"github.com/serin-dev/serin/admission/certs"
	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/analysis/alerts"
	"github.com/serin-dev/serin/analysis/hooks"
	"github.com/serin-dev/serin/analysis/prom"
	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/xds"
	"github.com/serin-dev/serin/xds/istio"
	xdsserver "github.com/serin-dev/serin/xds/server"
	"github.com/serin-dev/serin/xds/translate"
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
	healthAddress     string
	leaderElect       bool
	prometheusAddress string
	hookAllowedHosts  []string
	logLevel          string
	logFormat         string
	istioMode         string
	istioXDSAddress   string
	replicaName       string
	xdsTLSCert        string
	xdsTLSKey         string
	xdsClientCA       string
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
	f.StringVar(&o.healthAddress, "health-address", ":8081", "health probe address")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "elect a leader to run the release engine")
	f.StringVar(&o.prometheusAddress, "prometheus-address", "", "Prometheus for the built-in metrics and templates without an address")
	f.StringSliceVar(&o.hookAllowedHosts, "hook-allowed-hosts", nil, "hosts webhooks may call (empty: any)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info or error")
	f.StringVar(&o.logFormat, "log-format", "json", "json or console")
	f.StringVar(&o.istioMode, "istio-mode", "none", "none, bootstrap (Istio's Envoys reach serin through a bootstrap cluster) or google-grpc")
	f.StringVar(&o.istioXDSAddress, "istio-xds-address", "", "host:port Istio's Envoys use to reach serin's xDS server")
	f.StringVar(&o.xdsTLSCert, "xds-tls-cert", "", "serving certificate of the xDS server (PEM); with --xds-tls-key, xDS is served over TLS, hot-reloaded")
	f.StringVar(&o.xdsTLSKey, "xds-tls-key", "", "private key of --xds-tls-cert")
	f.StringVar(&o.xdsClientCA, "xds-client-ca", "", "CA bundle (PEM) that proxies' client certificates must chain to (mTLS; the certificate's identity names the node)")
	f.StringVar(&o.replicaName, "replica-name", defaultReplicaName(), "this replica's name (the pod name), under which it shares what its proxies applied")
	return cmd
}

func newLogger(o controllerOptions) (logr.Logger, error) {
	var level zapcore.Level
	switch o.logLevel {
	case "debug":
		level = zapcore.DebugLevel
	case "info":
		level = zapcore.InfoLevel
	case "error":
		level = zapcore.ErrorLevel
	default:
		return logr.Logger{}, fmt.Errorf("--log-level %q: want debug, info or error", o.logLevel)
	}
	if o.logFormat != "json" && o.logFormat != "console" {
		return logr.Logger{}, fmt.Errorf("--log-format %q: want json or console", o.logFormat)
	}
	return zap.New(zap.Level(level), zap.UseDevMode(o.logFormat == "console")), nil
}

func runController(ctx context.Context, conn *connFlags, o controllerOptions) error {
	log, err := newLogger(o)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	ctrl.SetLogger(log)
	ctx = logr.NewContext(ctx, log)
	cfg, err := conn.loader().ClientConfig()
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 50, 100
	scheme, err := newScheme()
	if err != nil {
		return err
	}

	// Webhook TLS: serin's own rotating certificates, or files on disk.
	whOpts := webhook.Options{Host: o.webhookHost, Port: o.webhookPort,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}}
	var rotator *certs.Rotator
	switch o.webhookCertMode {
	case "builtin":
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		var ips []net.IP
		for _, s := range o.webhookIPs {
			ip := net.ParseIP(s)
			if ip == nil {
				return &exitError{code: 2, err: fmt.Errorf("--webhook-ip %q is not an IP", s)}
			}
			ips = append(ips, ip)
		}
		rotator, err = certs.New(cs, certs.Options{Namespace: o.namespace, SecretName: o.webhookSecret,
			ServiceName: o.webhookService, WebhookConfigName: o.webhookConfigName, IPs: ips,
			Metrics: certs.NewMetrics(crmetrics.Registry), Log: log.WithName("certs")})
		if err != nil {
			return err
		}
		whOpts.TLSOpts = append(whOpts.TLSOpts, rotator.ConfigureTLS)
	case "dir":
		whOpts.CertDir = o.webhookCertDir
	default:
		return &exitError{code: 2, err: fmt.Errorf("--webhook-cert-mode %q: want builtin or dir", o.webhookCertMode)}
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		// Leases are read in serin's namespace only (replica reports).
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{o.namespace: {}}},
		}},
		Scheme:                        scheme,
		Logger:                        log,
		Metrics:                       metricsserver.Options{BindAddress: o.metricsAddress},
		HealthProbeBindAddress:        o.healthAddress,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "serin.dev",
		LeaderElectionNamespace:       o.namespace,
		LeaderElectionReleaseOnCancel: true,
		WebhookServer:                 webhook.NewServer(whOpts),
		BaseContext:                   func() context.Context { return ctx },
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if rotator != nil {
		if err := mgr.Add(rotator); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("webhook-certificate", rotator.Ready); err != nil {
			return err
		}
	}
	admissionMetrics := admission.NewMetrics(crmetrics.Registry)
	admission.Register(mgr.GetWebhookServer(), admissionMetrics, log)
	if strings.EqualFold(o.istioMode, "bootstrap") {
		admission.RegisterPodBootstrap(mgr.GetWebhookServer(), admissionMetrics, istio.DefaultBootstrapConfigMap)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}

	// Traffic: the xDS server and the controller that serves Canary status.
	wakeups := make(chan event.GenericEvent, 64)
	xdsTLS, err := xdsTLSConfig(o, mgr)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	srv, err := xdsserver.New(xdsserver.Options{Address: o.xdsAddress, TLS: xdsTLS, Registerer: crmetrics.Registry, Logger: log.WithName("xds")})
	if err != nil {
		return err
	}
	if err := mgr.Add(srv); err != nil {
		return err
	}
	recorder := boundedRecorder{mgr.GetEventRecorder("serin")}
	traffic := &xds.Controller{Client: mgr.GetClient(), Server: srv, Recorder: recorder, Wakeups: wakeups,
		Peers: &xds.Peers{Client: mgr.GetClient(), Namespace: o.namespace, Identity: o.replicaName}}
	if traffic.Istio, err = istioWriter(o, mgr); err != nil {
		return &exitError{code: 2, err: err}
	}
	if err := traffic.SetupWithManager(mgr); err != nil {
		return err
	}

	// Analysis, hooks and alerts.
	rd := reader{cached: mgr.GetClient(), direct: mgr.GetAPIReader()}
	an := &analysis.Analyzer{
		Prometheus: &prom.Factory{Default: prom.Config{Address: o.prometheusAddress}, Secrets: rd},
		Templates:  rd,
		LoadReports: analysis.LoadReportsFunc(func(cluster string, since, until time.Time) map[string]analysis.LoadCounts {
			out := map[string]analysis.LoadCounts{}
			for k, v := range srv.LoadReports(cluster, since, until) {
				out[k] = analysis.LoadCounts(v)
			}
			return out
		}),
		Log:     log.WithName("analysis"),
		Metrics: analysis.NewMetrics(crmetrics.Registry),
	}
	caller := hooks.New(hooks.Options{AllowedHosts: o.hookAllowedHosts, Log: log.WithName("hooks")})
	notes := &alerts.Notifier{Providers: rd, Secrets: rd, Log: log.WithName("alerts")}

	engine := &rollout.Reconciler{
		Client: mgr.GetClient(), Recorder: recorder, Traffic: traffic,
		Analyzer: analyzer(an), Hooks: hookRunner(caller), Notifier: notifier(notes, caller),
		Metrics: rollout.NewMetrics(crmetrics.Registry, Version), Wakeups: wakeups,
		Uninstall: webhookGone{reader: mgr.GetAPIReader(), name: o.webhookConfigName},
	}
	if err := engine.SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	log.Info("starting serin", "version", Version, "namespace", o.namespace, "xds", o.xdsAddress, "webhookPort", o.webhookPort)
	return mgr.Start(ctx)
}

// xdsTLSConfig is the xDS server's TLS from the flags: nil for plaintext,
// server TLS with a certificate reloaded when its files change, and mTLS
// when a client CA is given.
func xdsTLSConfig(o controllerOptions, mgr ctrl.Manager) (*tls.Config, error) {
	if o.xdsTLSCert == "" && o.xdsTLSKey == "" {
		if o.xdsClientCA != "" {
			return nil, fmt.Errorf("--xds-client-ca needs --xds-tls-cert and --xds-tls-key")
		}
		return nil, nil
	}
	if o.xdsTLSCert == "" || o.xdsTLSKey == "" {
		return nil, fmt.Errorf("--xds-tls-cert and --xds-tls-key go together")
	}
	watcher, err := certwatcher.New(o.xdsTLSCert, o.xdsTLSKey)
	if err != nil {
		return nil, fmt.Errorf("xds certificate: %w", err)
	}
	if err := mgr.Add(everyReplica(watcher.Start)); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: watcher.GetCertificate}
	if o.xdsClientCA != "" {
		pem, err := os.ReadFile(o.xdsClientCA)
		if err != nil {
			return nil, fmt.Errorf("--xds-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--xds-client-ca %s holds no PEM certificate", o.xdsClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// everyReplica is a Runnable that runs on every replica.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }

// defaultReplicaName is the pod name in a cluster, else host and process.
func defaultReplicaName() string {
	if n := os.Getenv("POD_NAME"); n != "" {
		return n
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// istioWriter configures the Istio glue from the flags.
func istioWriter(o controllerOptions, mgr ctrl.Manager) (*xds.IstioWriter, error) {
	opts := istio.Options{XDSAddress: o.istioXDSAddress}
	switch strings.ToLower(o.istioMode) {
	case "none", "":
		return nil, nil
	case "bootstrap":
		opts.Translate.Source = translate.ConfigSource{Kind: translate.SourceStaticCluster}
	case "google-grpc":
		if o.istioXDSAddress == "" {
			return nil, fmt.Errorf("--istio-mode=google-grpc needs --istio-xds-address")
		}
		opts.Translate.Source = translate.ConfigSource{Kind: translate.SourceGoogleGRPC, TargetURI: o.istioXDSAddress}
		opts.XDSAddress = ""
	default:
		return nil, fmt.Errorf("--istio-mode %q: want none, bootstrap or google-grpc", o.istioMode)
	}
	return &xds.IstioWriter{Client: mgr.GetClient(), Options: opts}, nil
}
