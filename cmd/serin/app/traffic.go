package app

import (
	"fmt"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/serin-dev/serin/admission"
	"github.com/serin-dev/serin/admission/certs"
	"github.com/serin-dev/serin/xds/istio"
	xdsserver "github.com/serin-dev/serin/xds/server"
	"github.com/serin-dev/serin/xds/traffic"
	"github.com/serin-dev/serin/xds/translate"
)

// trafficParts is what the traffic set-up hands the release engine.
type trafficParts struct {
	controller *traffic.Controller
	server     *xdsserver.Server
	recorder   events.EventRecorder
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
		Peers: &traffic.Peers{Client: mgr.GetClient(), Namespace: o.namespace, Identity: o.replicaName}}
	if c.Istio, err = istioWriter(o, mgr); err != nil {
		return trafficParts{}, &exitError{code: 2, err: err}
	}
	if err := c.SetupWithManager(mgr); err != nil {
		return trafficParts{}, err
	}
	return trafficParts{controller: c, server: srv, recorder: recorder, wakeups: wakeups}, nil
}

// istioWriter configures the Istio glue from the flags.
func istioWriter(o controllerOptions, mgr ctrl.Manager) (*traffic.IstioWriter, error) {
	opts := istio.Options{XDSAddress: o.istioXDSAddress, MeshWideSidecars: o.istioMeshWide}
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
	w := &traffic.IstioWriter{Client: mgr.GetClient(), Options: opts}
	if opts.XDSAddress != "" {
		w.BootstrapNamespaces = o.istioBootstrapNS
	}
	return w, nil
}
