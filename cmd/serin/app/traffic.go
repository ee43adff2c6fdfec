package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/event"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/serin-dev/serin/admission"
	"github.com/serin-dev/serin/admission/certs"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/xds/istio"
	xdsserver "github.com/serin-dev/serin/xds/server"
	"github.com/serin-dev/serin/xds/traffic"
	"github.com/serin-dev/serin/xds/translate"
)

// trafficParts is what the traffic set-up hands the release engine.
type trafficParts struct {
	controller *traffic.Controller
	server     *xdsserver.Server
	// loads are every replica's load reports.
	loads    *traffic.LoadShare
	recorder events.EventRecorder
	// wakeups is how the traffic controller wakes the engine.
	wakeups chan event.GenericEvent
}

// setupTraffic runs the xDS server and the controller that serves Canary
// status to it (with the Istio glue of --istio-mode).
func setupTraffic(mgr ctrl.Manager, o controllerOptions, rotator *certs.Rotator, log logr.Logger) (trafficParts, error) {
	wakeups := make(chan event.GenericEvent, 64)
	xdsTLS, err := xdsTLSConfig(o, mgr, rotator)
	if err != nil {
		return trafficParts{}, &exitError{code: 2, err: err}
	}
	if xdsTLS == nil {
		log.Info("WARNING: xDS is served in plaintext, without client authentication or access control: "+
			"any client that reaches the xDS port gets every release, and its NACKs and load reports count",
			"flag", "--xds-plaintext")
	}
	srv, err := xdsserver.New(xdsserver.Options{Address: o.xdsAddress, TLS: xdsTLS, Open: xdsTLS == nil,
		Registerer: crmetrics.Registry, Logger: log.WithName("xds")})
	if err != nil {
		return trafficParts{}, err
	}
	if err := mgr.Add(srv); err != nil {
		return trafficParts{}, err
	}
	recorder := boundedRecorder{mgr.GetEventRecorder("serin")}
	c := &traffic.Controller{Client: mgr.GetClient(), Server: srv, Recorder: recorder, Wakeups: wakeups,
		Hosts: &admission.HostOwners{Reader: mgr.GetClient()},
		Peers: &traffic.Peers{Client: mgr.GetClient(), Namespace: o.namespace, Identity: o.replicaName},
		Loads: &traffic.LoadShare{Client: mgr.GetClient(), Namespace: o.namespace, Identity: o.replicaName, Local: srv}}
	if err := c.Loads.Register(crmetrics.Registry); err != nil {
		return trafficParts{}, err
	}
	if c.Routes, err = routeWriter(o, mgr); err != nil {
		return trafficParts{}, &exitError{code: 2, err: err}
	}
	if c.Istio, err = istioWriter(o, mgr, rotator, log); err != nil {
		return trafficParts{}, &exitError{code: 2, err: err}
	}
	if err := c.SetupWithManager(mgr); err != nil {
		return trafficParts{}, err
	}
	return trafficParts{controller: c, server: srv, loads: c.Loads, recorder: recorder, wakeups: wakeups}, nil
}

// istioWriter configures the Istio glue from the flags. Under mutual TLS
// Istio's proxies verify serin with its CA bundle (see istioCABundle) and
// present their Istio workload certificates (see istioOptions).
func istioWriter(o controllerOptions, mgr ctrl.Manager, rotator *certs.Rotator, log logr.Logger) (*traffic.IstioWriter, error) {
	opts, on, err := istioOptions(o)
	if err != nil || !on {
		return nil, err
	}
	w := &traffic.IstioWriter{Client: mgr.GetClient(), Options: opts}
	if opts.XDSAddress != "" {
		w.BootstrapNamespaces = o.istioBootstrapNS
	}
	if o.xdsPlaintext {
		return w, nil
	}
	bundle, changes, err := istioCABundle(o, mgr, rotator)
	if err != nil {
		return nil, err
	}
	w.CABundle = bundle
	err = mgr.Add(everyReplica(func(ctx context.Context) error {
		return w.FollowCA(logr.NewContext(ctx, log), changes, 5*time.Second)
	}))
	return w, err
}

// istioOptions are the Istio glue's options from the flags; on is false
// with --istio-mode=none. Istio's Envoys present their workload
// certificates: over SDS in bootstrap mode (the bootstrap cluster checks
// serin's certificate for its xDS Service name), from the files Istio's
// agent writes at serin's pod webhook's request in google-grpc mode.
func istioOptions(o controllerOptions) (opts istio.Options, on bool, err error) {
	opts = istio.Options{XDSAddress: o.istioXDSAddress, MeshWideSidecars: o.istioMeshWide,
		XDSServerName: o.xdsService + "." + o.namespace + ".svc", XDSPlaintext: o.xdsPlaintext}
	switch strings.ToLower(o.istioMode) {
	case "none", "":
		return opts, false, nil
	case "bootstrap":
		opts.Translate.Source = translate.ConfigSource{Kind: translate.SourceStaticCluster}
	case "google-grpc":
		if o.istioXDSAddress == "" {
			return opts, false, fmt.Errorf("--istio-mode=google-grpc needs --istio-xds-address")
		}
		opts.Translate.Source = translate.ConfigSource{Kind: translate.SourceGoogleGRPC, TargetURI: o.istioXDSAddress}
		if !o.xdsPlaintext {
			opts.Translate.Source.ClientCertFile = path.Join(admission.IstioOutputCertsDir, admission.IstioOutputCertChain)
			opts.Translate.Source.ClientKeyFile = path.Join(admission.IstioOutputCertsDir, admission.IstioOutputKey)
			// Only the proxies that have those files (the pod webhook
			// marks them) may get clusters that name them.
			opts.ProxyMetadata = map[string]string{istio.ProxyMetadataKey: istio.GoogleGRPCProxyMetadata}
		}
		opts.XDSAddress = ""
	default:
		return opts, false, fmt.Errorf("--istio-mode %q: want none, bootstrap or google-grpc", o.istioMode)
	}
	return opts, true, nil
}

// istioCABundle is where serin's CA bundle comes from, and when it changes:
// the Rotator in builtin mode; else ca.crt next to the serving certificate
// (--xds-tls-cert, or --webhook-cert-dir, as cert-manager writes it), read
// again whenever the serving certificate changes.
func istioCABundle(o controllerOptions, mgr ctrl.Manager, rotator *certs.Rotator) (func() []byte, <-chan struct{}, error) {
	if rotator != nil && o.xdsTLSCert == "" {
		return rotator.CABundle, rotator.CAChanges(), nil
	}
	certFile, keyFile := filepath.Join(o.webhookCertDir, "tls.crt"), filepath.Join(o.webhookCertDir, "tls.key")
	if o.xdsTLSCert != "" {
		certFile, keyFile = o.xdsTLSCert, o.xdsTLSKey
	}
	caFile := filepath.Join(filepath.Dir(certFile), certs.KeyCABundle)
	if _, err := readCAs(caFile); err != nil {
		return nil, nil, fmt.Errorf("serin's CA for Istio's proxies: %w", err)
	}
	watcher, err := certwatcher.New(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("serin's CA for Istio's proxies: %w", err)
	}
	changes := make(chan struct{}, 1)
	watcher.RegisterCallback(func(tls.Certificate) {
		select {
		case changes <- struct{}{}:
		default:
		}
	})
	if err := mgr.Add(everyReplica(watcher.Start)); err != nil {
		return nil, nil, err
	}
	bundle := func() []byte {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil
		}
		return b
	}
	return bundle, changes, nil
}

// routeWriter carries the releases whose provider (or --mesh-provider) is
// a Gateway API or SMI router.
func routeWriter(o controllerOptions, mgr ctrl.Manager) (*traffic.RouteWriter, error) {
	p := v1alpha1.Provider(o.meshProvider)
	switch p {
	case "", v1alpha1.ProviderIstio, v1alpha1.ProviderKubernetes, v1alpha1.ProviderGatewayAPI, v1alpha1.ProviderGatewayAPIBeta,
		v1alpha1.ProviderLinkerd, v1alpha1.ProviderSMIv1alpha2:
	default:
		return nil, fmt.Errorf("--mesh-provider %q: want istio, kubernetes, gatewayapi:v1 or linkerd", o.meshProvider)
	}
	w := &traffic.RouteWriter{Client: mgr.GetClient(), Default: p}
	if o.istiodDebugURL != "" {
		w.Istiod = &traffic.IstiodSync{URL: strings.TrimSuffix(o.istiodDebugURL, "/"), Client: &http.Client{Timeout: 5 * time.Second}}
	}
	return w, nil
}
