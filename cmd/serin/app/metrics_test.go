package app

import (
	"crypto/tls"
	"testing"
)

// TestMetricsServerOptions: /metrics is HTTPS behind the authentication
// and authorization filter unless --metrics-secure=false, over HTTP/1.1,
// with the certificate directory when one is given.
func TestMetricsServerOptions(t *testing.T) {
	o := controllerOptions{metricsAddress: ":8080", metricsSecure: true, metricsCertDir: "/certs"}
	got := metricsServerOptions(o)
	if !got.SecureServing || got.FilterProvider == nil || got.CertDir != "/certs" || got.BindAddress != ":8080" {
		t.Errorf("secure: %+v", got)
	}
	c := &tls.Config{NextProtos: []string{"h2"}}
	for _, f := range got.TLSOpts {
		f(c)
	}
	if len(c.NextProtos) != 1 || c.NextProtos[0] != "http/1.1" {
		t.Errorf("NextProtos = %v, want http/1.1 only", c.NextProtos)
	}

	o.metricsSecure = false
	if got := metricsServerOptions(o); got.SecureServing || got.FilterProvider != nil || got.BindAddress != ":8080" {
		t.Errorf("insecure: %+v", got)
	}
}
