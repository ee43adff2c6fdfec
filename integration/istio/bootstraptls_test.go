package istio

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

// istioRoot stands in for Istio's root CA: serin trusts it through
// --xds-client-ca, as the chart does with istio-ca-root-cert.
type istioRoot struct {
	file string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newIstioRoot(t *testing.T) istioRoot {
	ca, key := selfSignedCA(t)
	file := filepath.Join(t.TempDir(), "root-cert.pem")
	writePEM(t, file, "CERTIFICATE", ca.Raw)
	return istioRoot{file: file, ca: ca, key: key}
}

// bootstrapTLS is the upstream TLS of the bootstrap's serin-xds cluster.
func bootstrapTLS(t *testing.T, boot string) *tlsv3.UpstreamTlsContext {
	t.Helper()
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal([]byte(boot), b); err != nil {
		t.Fatalf("bootstrap override is not an Envoy bootstrap: %v", err)
	}
	cl := b.GetStaticResources().GetClusters()
	if len(cl) != 1 || cl[0].GetTransportSocket() == nil {
		t.Fatalf("want one serin-xds cluster with TLS, got %v", cl)
	}
	up := &tlsv3.UpstreamTlsContext{}
	if err := cl[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(up); err != nil {
		t.Fatalf("serin-xds transport socket: %v", err)
	}
	return up
}

// checkBootstrapTLS checks the bootstrap's TLS against serin's real CA
// and serving certificate: trusted_ca is the CA bundle of serin's webhook
// Secret, the SAN match names the xDS Service, the client certificate is
// the workload one (SDS "default"). Then a client with a workload
// certificate from Istio's root (identity of namespace ns) dials serin's
// xDS with exactly that trust and name and receives the clusters of ns's
// release.
func checkBootstrapTLS(ctx context.Context, t *testing.T, c *cluster.Cluster, s *harness.Serin, root istioRoot, boot, ns string) {
	t.Helper()
	up := bootstrapTLS(t, boot)
	common := up.GetCommonTlsContext()
	vc := common.GetValidationContext()
	b64, err := c.Kubectl(ctx, "", "get", "secret", "serin-webhook-tls", "-n", harness.Namespace, "-o", `jsonpath={.data.ca\.crt}`)
	if err != nil {
		t.Fatal(err)
	}
	secretCA, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		t.Fatal(err)
	}
	if got := vc.GetTrustedCa().GetInlineString(); got == "" || got != string(secretCA) {
		t.Errorf("trusted_ca %q is not the CA bundle of serin's Secret %q", got, secretCA)
	}
	sans := vc.GetMatchTypedSubjectAltNames()
	serverName := "serin-xds." + harness.Namespace + ".svc"
	if len(sans) != 1 || sans[0].GetSanType() != tlsv3.SubjectAltNameMatcher_DNS || sans[0].GetMatcher().GetExact() != serverName {
		t.Errorf("SAN match %v, want DNS %s", sans, serverName)
	}
	if sds := common.GetTlsCertificateSdsSecretConfigs(); len(sds) != 1 || sds[0].GetName() != "default" {
		t.Errorf("client certificate %v, want the workload certificate (SDS default)", sds)
	}
	if alpn := common.GetAlpnProtocols(); len(alpn) != 1 || alpn[0] != "h2" {
		t.Errorf("ALPN %v, want h2", alpn)
	}

	// The handshake with the bootstrap's own settings.
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(vc.GetTrustedCa().GetInlineString())) {
		t.Fatal("trusted_ca holds no certificate")
	}
	id, _ := url.Parse("spiffe://cluster.local/ns/" + ns + "/sa/default")
	cert, key := leaf(t, root.ca, root.key, "workload", nil, []*url.URL{id})
	cfg := &tls.Config{RootCAs: roots, ServerName: sans[0].GetMatcher().GetExact(), MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}
	conn, err := grpc.NewClient(s.XDSAddress(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	const clusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "sidecar~10.0.0.1~workload." + ns + "~" + ns + ".svc.cluster.local"},
		TypeUrl: clusterType}); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			t.Fatalf("a proxy with the bootstrap's TLS settings and an Istio workload certificate was not served: %v", err)
		}
		for _, r := range resp.GetResources() {
			if strings.Contains(string(r.GetValue()), ns) {
				return
			}
		}
		if err := st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: clusterType, VersionInfo: resp.GetVersionInfo(),
			ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
	}
}
