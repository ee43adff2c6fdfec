package install

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// TestChartIstioModes: with an Istio mode, serin's pod keeps its xDS port
// out of a sidecar (Istio's Envoys talk TLS straight to serin), trusts
// Istio's root by default, names its xDS Service for the bootstrap's SAN
// match, and the pod webhook is served where the mode needs it.
func TestChartIstioModes(t *testing.T) {
	tests := []struct {
		name              string
		set               []string
		exclude, clientCA string
		podWebhook        string
	}{
		{"none", nil, "", "", ""},
		{"bootstrap", []string{"istio.mode=bootstrap", "istio.bootstrap.namespaces={team-a}"}, "18000", "istio-ca-root-cert", "bootstrap.pods.serin.dev"},
		{"google-grpc", []string{"istio.mode=google-grpc"}, "18000", "istio-ca-root-cert", "istio-certs.pods.serin.dev"},
		{"google-grpc plaintext", []string{"istio.mode=google-grpc", "xds.plaintext=true"}, "18000", "", ""},
		{"own client CA and annotation", []string{"istio.mode=bootstrap", "istio.bootstrap.namespaces={team-a}", "xds.clientCA.configMap=mine",
			`controller.podAnnotations.traffic\.sidecar\.istio\.io/excludeInboundPorts=9000\,9001`}, "9000,9001,18000", "mine", "bootstrap.pods.serin.dev"},
		{"cert-manager", []string{"istio.mode=bootstrap", "istio.bootstrap.namespaces={team-a}", "certificates.mode=certManager"}, "18000", "istio-ca-root-cert", "bootstrap.pods.serin.dev"},
		// No namespace granted: no pod is pointed at a ConfigMap serin
		// may not write.
		{"bootstrap without namespaces", []string{"istio.mode=bootstrap"}, "18000", "istio-ca-root-cert", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := decode(t, helmTemplate(t, "serin-system", false, tt.set...))
			u := objs.get("Deployment", "serin")
			if u == nil {
				t.Fatal("no Deployment")
			}
			d := as[appsv1.Deployment](t, u)
			if got := d.Spec.Template.Annotations["traffic.sidecar.istio.io/excludeInboundPorts"]; got != tt.exclude {
				t.Errorf("excludeInboundPorts %q, want %q", got, tt.exclude)
			}
			var cm string
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == "xds-client-ca" && v.ConfigMap != nil {
					cm = v.ConfigMap.Name
				}
			}
			if cm != tt.clientCA {
				t.Errorf("xds client CA ConfigMap %q, want %q", cm, tt.clientCA)
			}
			args := d.Spec.Template.Spec.Containers[0].Args
			if hasCA := slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--xds-client-ca=") }); hasCA != (tt.clientCA != "") {
				t.Errorf("--xds-client-ca in args %v, want %v", hasCA, tt.clientCA != "")
			}
			if tt.exclude != "" && !strings.Contains(strings.Join(tt.set, ","), "plaintext") && !slices.Contains(args, "--xds-service=serin-xds") {
				t.Errorf("args %v lack --xds-service, which the bootstrap's SAN match names", args)
			}
			hooks := objs.webhooks(t, "serin")
			for _, name := range []string{"bootstrap.pods.serin.dev", "istio-certs.pods.serin.dev"} {
				if _, ok := hooks[name]; ok != (name == tt.podWebhook) {
					t.Errorf("webhook %s rendered: %v", name, ok)
				}
			}
		})
	}
}
