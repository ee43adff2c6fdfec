package app

import (
	"testing"

	"github.com/serin-dev/serin/xds/istio"
	"github.com/serin-dev/serin/xds/translate"
)

// TestIstioOptions: how Istio's Envoys authenticate to serin, per mode.
func TestIstioOptions(t *testing.T) {
	base := controllerOptions{namespace: "serin-system", xdsService: "serin-xds",
		istioXDSAddress: "serin-xds.serin-system.svc:18000"}

	o := base
	o.istioMode = "bootstrap"
	opts, on, err := istioOptions(o)
	if err != nil || !on {
		t.Fatalf("bootstrap: on %v, %v", on, err)
	}
	if opts.XDSServerName != "serin-xds.serin-system.svc" || opts.XDSPlaintext || opts.Translate.Source.Kind != translate.SourceStaticCluster {
		t.Errorf("bootstrap: %+v", opts)
	}

	o.istioMode = "google-grpc"
	opts, _, err = istioOptions(o)
	src := opts.Translate.Source
	if err != nil || src.ClientCertFile != "/etc/istio-output-certs/cert-chain.pem" || src.ClientKeyFile != "/etc/istio-output-certs/key.pem" {
		t.Errorf("google-grpc under mutual TLS: %+v, %v", src, err)
	}
	if opts.ProxyMetadata[istio.ProxyMetadataKey] != istio.GoogleGRPCProxyMetadata {
		t.Errorf("google-grpc under mutual TLS patches proxies without the certificate files: %v", opts.ProxyMetadata)
	}

	o.xdsPlaintext = true
	opts, _, err = istioOptions(o)
	if err != nil || opts.Translate.Source.ClientCertFile != "" || !opts.XDSPlaintext || opts.ProxyMetadata != nil {
		t.Errorf("google-grpc in plaintext: %+v, %v", opts, err)
	}

	o = base
	o.istioMode = "none"
	if _, on, err := istioOptions(o); on || err != nil {
		t.Errorf("none: on %v, %v", on, err)
	}
	o.istioMode = "ambient"
	if _, _, err := istioOptions(o); err == nil {
		t.Error("an unknown mode was accepted")
	}
	o.istioMode, o.istioXDSAddress = "google-grpc", ""
	if _, _, err := istioOptions(o); err == nil {
		t.Error("google-grpc without an address was accepted")
	}
}
