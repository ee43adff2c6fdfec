package app

import (
	"crypto/tls"

	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// metricsServerOptions serve /metrics on o.metricsAddress. Secure (the
// default): HTTPS, and every request must carry a bearer token that the
// API server authenticates (TokenReview) and authorizes for GET on the
// /metrics non-resource URL (SubjectAccessReview), as kubebuilder's
// scaffolds do. The certificate comes from --metrics-cert-dir (tls.crt,
// tls.key, reloaded when they change) or, without it, is self-signed at
// start. Insecure: plain HTTP for anyone who can reach the port.
func metricsServerOptions(o controllerOptions) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: o.metricsAddress}
	if !o.metricsSecure {
		return opts
	}
	opts.SecureServing = true
	opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	opts.CertDir = o.metricsCertDir
	// HTTP/1.1 only: scrapers need nothing more, and it keeps HTTP/2's
	// stream-reset floods away from a port every scraper can reach.
	opts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	return opts
}
