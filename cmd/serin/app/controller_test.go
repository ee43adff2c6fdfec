package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestControllerFlagDefaults pins the controller's flags and defaults.
func TestControllerFlagDefaults(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "")
	cmd := newControllerCmd(&connFlags{})
	want := map[string]string{
		"namespace":                  "serin-system",
		"webhook-host":               "",
		"webhook-port":               "9443",
		"webhook-cert-mode":          "builtin",
		"webhook-cert-dir":           "/tmp/k8s-webhook-server/serving-certs",
		"webhook-secret":             "serin-webhook-tls",
		"webhook-service":            "serin-webhook",
		"webhook-config-name":        "serin",
		"webhook-ip":                 "[]",
		"xds-address":                ":18000",
		"metrics-address":            ":8080",
		"metrics-secure":             "true",
		"metrics-cert-dir":           "",
		"flagger-metrics":            "false",
		"health-address":             ":8081",
		"leader-elect":               "true",
		"prometheus-address":         "",
		"hook-allowed-hosts":         "[]",
		"egress-allow":               "[]",
		"min-proxies":                "0",
		"config-tracking":            "true",
		"mesh-provider":              "",
		"istiod-debug-url":           "",
		"log-level":                  "info",
		"log-format":                 "json",
		"watch-namespaces":           "[]",
		"istio-bootstrap-namespaces": "[]",
		"istio-mode":                 "none",
		"istio-xds-address":          "",
		"istio-mesh-wide-sidecars":   "false",
		"xds-tls-cert":               "",
		"xds-tls-key":                "",
		"xds-client-ca":              "",
		"xds-plaintext":              "false",
		"xds-service":                "serin-xds",
		"flagger-compat":             "false",
		"pprof-address":              "",
		"kube-api-qps":               "50",
		"kube-api-burst":             "100",
		"replica-name":               defaultReplicaName(),
	}
	n := 0
	for name, def := range want {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			t.Errorf("no --%s", name)
			continue
		}
		n++
		if f.DefValue != def {
			t.Errorf("--%s defaults to %q, want %q", name, f.DefValue, def)
		}
	}
	if got := cmd.Flags().NFlag(); got != 0 {
		t.Errorf("%d flags set before parsing", got)
	}
	count := 0
	cmd.Flags().VisitAll(func(*pflag.Flag) { count++ })
	if count != n {
		t.Errorf("%d flags, want %d", count, n)
	}
}

// TestControllerUsageErrors checks that bad flags exit with 2 before
// anything talks to the API server.
func TestControllerUsageErrors(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-level", "trace"}, `--log-level "trace"`},
		{[]string{"--log-format", "text"}, `--log-format "text"`},
		{[]string{"--webhook-cert-mode", "files"}, `--webhook-cert-mode "files"`},
		{[]string{"--webhook-ip", "localhost"}, `--webhook-ip "localhost" is not an IP`},
		{[]string{"--xds-plaintext", "--xds-client-ca", "ca.pem"}, "--xds-plaintext excludes"},
		{[]string{"--xds-tls-cert", "tls.crt"}, "--xds-tls-cert and --xds-tls-key go together"},
		{[]string{"--xds-client-ca", filepath.Join(t.TempDir(), "missing.pem")}, "--xds-client-ca"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			args := append([]string{"controller", "--kubeconfig", kubeconfig}, tc.args...)
			if code := Execute(context.Background(), args, &bytes.Buffer{}, &stderr); code != 2 {
				t.Errorf("exit code %d, want 2 (%s)", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.want)
			}
		})
	}
}
