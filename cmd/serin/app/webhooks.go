package app

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/serin-dev/serin/admission"
	"github.com/serin-dev/serin/admission/certs"
	"github.com/serin-dev/serin/xds/istio"
)

// webhookServerOptions are the webhook server's options for
// --webhook-cert-mode: serin's own rotating certificates (builtin, with
// the Rotator that keeps them) or files on disk (dir, no Rotator).
func webhookServerOptions(cfg *rest.Config, o controllerOptions, log logr.Logger) (webhook.Options, *certs.Rotator, error) {
	opts := webhook.Options{Host: o.webhookHost, Port: o.webhookPort,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}}
	switch o.webhookCertMode {
	case "builtin":
		rotator, err := newRotator(cfg, o, log)
		if err != nil {
			return webhook.Options{}, nil, err
		}
		opts.TLSOpts = append(opts.TLSOpts, rotator.ConfigureTLS)
		return opts, rotator, nil
	case "dir":
		opts.CertDir = o.webhookCertDir
		return opts, nil, nil
	default:
		return webhook.Options{}, nil, &exitError{code: 2, err: fmt.Errorf("--webhook-cert-mode %q: want builtin or dir", o.webhookCertMode)}
	}
}

// newRotator makes the Rotator of builtin mode, its metrics on
// controller-runtime's registry.
func newRotator(cfg *rest.Config, o controllerOptions, log logr.Logger) (*certs.Rotator, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, s := range o.webhookIPs {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("--webhook-ip %q is not an IP", s)}
		}
		ips = append(ips, ip)
	}
	return certs.New(cs, certs.Options{Namespace: o.namespace, SecretName: o.webhookSecret,
		ServiceName: o.webhookService, ExtraServices: xdsServices(o), WebhookConfigName: o.webhookConfigName, IPs: ips,
		Metrics: certs.NewMetrics(crmetrics.Registry), Log: log.WithName("certs")})
}

// setupWebhooks serves the admission webhooks, their metrics on
// controller-runtime's registry, and runs the Rotator when there is one;
// the webhook server is ready once it serves (and has a certificate).
func setupWebhooks(mgr ctrl.Manager, o controllerOptions, rotator *certs.Rotator, log logr.Logger) error {
	if rotator != nil {
		if err := mgr.Add(rotator); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("webhook-certificate", rotator.Ready); err != nil {
			return err
		}
	}
	metrics := admission.NewMetrics(crmetrics.Registry)
	admission.Register(mgr.GetWebhookServer(), metrics, log, admission.WithHostOwners(&admission.HostOwners{Reader: mgr.GetClient()}))
	admission.RegisterPodConfig(mgr.GetWebhookServer(), metrics)
	switch {
	case strings.EqualFold(o.istioMode, "bootstrap"):
		admission.RegisterPodBootstrap(mgr.GetWebhookServer(), metrics, istio.DefaultBootstrapConfigMap)
	case strings.EqualFold(o.istioMode, "google-grpc") && !o.xdsPlaintext:
		admission.RegisterPodIstioCerts(mgr.GetWebhookServer(), metrics)
	}
	return mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker())
}
