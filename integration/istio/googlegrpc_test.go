package istio

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/serin-dev/serin/admission"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

// TestGoogleGRPCPodCertificates: in google-grpc mode with mutual TLS, the
// pod webhook has Istio's agent write the workload certificate of new pods
// of opted-in namespaces to the files serin's google_grpc clusters
// present, merged into the pod's own proxy config; other namespaces are
// left alone.
func TestGoogleGRPCPodCertificates(t *testing.T) {
	c := cluster.Get(t)
	harness.InstallIstioCRDs(t, c)
	harness.Install(t, c, harness.Options{
		Sets:      []string{"istio.mode=google-grpc"},
		ExtraArgs: []string{"--istio-mode=google-grpc", "--istio-xds-address=serin-xds.serin-system.svc:18000"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	optedIn, other := c.Namespace(t), c.Namespace(t)
	if _, err := c.Kubectl(ctx, "", "label", "namespace", optedIn, "serin.dev/istio-bootstrap=enabled"); err != nil {
		t.Fatal(err)
	}
	get := func(ns, name, key string) string {
		t.Helper()
		out, err := c.Kubectl(ctx, "", "get", "pod", name, "-n", ns, "-o", "go-template={{index .metadata.annotations \""+key+"\"}}")
		if err != nil {
			t.Fatal(err)
		}
		if out == "<no value>" {
			return ""
		}
		return out
	}
	own := `, annotations: {proxy.istio.io/config: "holdApplicationUntilProxyStarts: true"}`
	for _, tt := range []struct{ ns, name, extra, config, mount string }{
		{optedIn, "plain", "", `{"proxyMetadata":{"ISTIO_META_SERIN_XDS":"google-grpc","OUTPUT_CERTS":"/etc/istio-output-certs"}}`,
			`[{"mountPath":"/etc/istio-output-certs","name":"serin-istio-certs"}]`},
		{optedIn, "own", own, `{"holdApplicationUntilProxyStarts":true,"proxyMetadata":{"ISTIO_META_SERIN_XDS":"google-grpc","OUTPUT_CERTS":"/etc/istio-output-certs"}}`,
			`[{"mountPath":"/etc/istio-output-certs","name":"serin-istio-certs"}]`},
		{other, "elsewhere", "", "", ""},
	} {
		if _, err := c.Kubectl(ctx, fmt.Sprintf(pod, tt.name, tt.ns, tt.extra), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		if got := get(tt.ns, tt.name, admission.ProxyConfigAnnotation); got != tt.config {
			t.Errorf("pod %s/%s: %s %q, want %q", tt.ns, tt.name, admission.ProxyConfigAnnotation, got, tt.config)
		}
		if got := get(tt.ns, tt.name, admission.UserVolumeMountAnnotation); got != tt.mount {
			t.Errorf("pod %s/%s: %s %q, want %q", tt.ns, tt.name, admission.UserVolumeMountAnnotation, got, tt.mount)
		}
		if got := get(tt.ns, tt.name, admission.BootstrapOverrideAnnotation); got != "" {
			t.Errorf("pod %s/%s got a bootstrap override in google-grpc mode: %q", tt.ns, tt.name, got)
		}
	}
}
