package traffic

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/xds/translate"
)

// envoyBootstrap bootstraps Envoy to serin over ADS, with one static
// listener whose routes come from serin (RDS) and whose clusters and
// endpoints serin serves too (CDS, EDS).
const envoyBootstrap = `node: {id: %[1]s, cluster: serin-tests}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: serin-xds}}]
  cds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 10s}
static_resources:
  clusters:
  - name: serin-xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          alpn_protocols: [h2]
          tls_certificates: [{certificate_chain: {filename: %[5]s/tls.crt}, private_key: {filename: %[5]s/tls.key}}]
          validation_context: {trusted_ca: {filename: %[5]s/ca.crt}}
    load_assignment:
      cluster_name: serin-xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %[2]d}}}}]}]
  listeners:
  - name: ingress
    address: {socket_address: {address: 127.0.0.1, port_value: %[3]d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          rds:
            route_config_name: %[4]s
            config_source: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 10s}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`

// testEnvoy runs a real Envoy against serin, when one is on PATH: an HTTP
// release at weight 50 with sticky sessions, through Envoy's own locality
// weighting, cookie routes and Set-Cookie from endpoint metadata — the
// HTTP features grpc-go does not implement.
func testEnvoy(t *testing.T, e *env) {
	bin, err := exec.LookPath("envoy")
	if err != nil {
		t.Skip("no envoy binary on PATH: the real-Envoy test is skipped (weights, cookies and mirroring for Envoy are covered by the translator goldens and the Istio checks)")
	}
	r := newRelease(t, e, "{port: 9898, appProtocol: http}", `    interval: 1s
    stepWeights: [50]
    sessionAffinity: {cookieName: serin-session, maxAge: 60}
    webhooks:
    - {name: promotion-gate, type: confirm-promotion, url: "`+e.gates.URL+`/gate/check"}
`)
	r.deploy(v2)
	c := r.waitFor("weight 50 applied, promotion held", time.Minute, func(c *v1alpha1.Canary) bool {
		return trafficApplied(c, 50) && c.Status.Phase == v1alpha1.PhaseWaitingPromotion
	})
	r.waitCanaryServing(2)
	stableRev, canaryRev := c.Status.StableRevision, c.Status.CanaryRevision

	ports, err := cluster.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	port := ports[0]
	dir := t.TempDir()
	cfg := filepath.Join(dir, "envoy.yaml")
	creds, err := harness.XDSCredentialsFor(context.Background(), e.s.XDSAddress(), r.ns)
	if err != nil || creds.Dir == "" {
		t.Fatalf("client certificate for Envoy: %v", err)
	}
	boot := fmt.Sprintf(envoyBootstrap, "envoy-"+r.ns, e.s.Ports.XDS, port, "serin/"+r.ns+"/podinfo/9898", creds.Dir)
	if err := os.WriteFile(cfg, []byte(boot), 0o644); err != nil {
		t.Fatal(err)
	}
	proc, err := cluster.StartProcess("envoy", bin, []string{"-c", cfg, "--disable-hot-restart", "--log-level", "warning"},
		cluster.ProcessOptions{Log: filepath.Join(dir, "envoy.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Kill()
		if t.Failed() {
			t.Logf("envoy log:\n%s", cluster.Tail(proc.LogPath, 40))
		}
	})

	host := "podinfo." + r.ns
	get := func(cookie string) (version, setCookie string, err error) {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
		req.Host = host
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", "", err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", "", fmt.Errorf("status %s", resp.Status)
		}
		return resp.Header.Get("X-Version"), resp.Header.Get("Set-Cookie"), nil
	}
	ready := false
	for deadline := time.Now().Add(30 * time.Second); !ready && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, _, err = get("")
		ready = err == nil
	}
	if !ready {
		t.Fatalf("Envoy never routed a request: %v", err)
	}

	// Envoy's locality weighting at 50, and Set-Cookie naming the revision
	// that answered.
	tl := tally{Versions: map[string]int{}, Pods: map[string]int{}}
	for range 2000 {
		v, sc, err := get("")
		tl.Total++
		if err != nil {
			tl.Errors++
			tl.LastErr = err
			continue
		}
		tl.Versions[v]++
		want := map[string]string{v1: stableRev, v2: canaryRev}[v]
		if !strings.HasPrefix(sc, "serin-session="+want+";") {
			t.Fatalf("version %s answered with Set-Cookie %q, want the revision %s", v, sc, want)
		}
	}
	checkShare(t, "envoy", 50, tl)

	// Sticky sessions: a cookie pins its revision.
	for rev, version := range map[string]string{stableRev: v1, canaryRev: v2} {
		n := 0
		for range 200 {
			if v, _, err := get("serin-session=" + rev); err == nil && v == version {
				n++
			}
		}
		t.Logf("FIGURE envoy_sticky_%s_share=%.3f", version, float64(n)/200)
		if n != 200 {
			t.Errorf("cookie for revision %s: %d of 200 requests reached %s", rev, n, version)
		}
	}
}

// TestEnvoyBootstrap checks, without Envoy, that the bootstrap testEnvoy
// gives Envoy is a valid Bootstrap: it decodes strictly into Envoy's types
// and passes serin's recursive validation.
func TestEnvoyBootstrap(t *testing.T) {
	y := fmt.Sprintf(envoyBootstrap, "envoy-test", 18000, 10000, "serin/test/podinfo/9898", "/certs")
	j, err := sigsyaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &b); err != nil {
		t.Fatalf("bootstrap does not decode: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("bootstrap is invalid: %v", err)
	}
	// ValidateAll stops at Any: check the connection manager itself, the
	// way serin checks its own (router last, RDS source).
	ls := b.GetStaticResources().GetListeners()
	if len(ls) != 1 || len(ls[0].GetFilterChains()) != 1 {
		t.Fatalf("want one static listener with one filter chain: %v", ls)
	}
	hcm, err := ls[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalNew()
	if err != nil {
		t.Fatal(err)
	}
	if err := translate.ValidateMessage(hcm); err != nil {
		t.Fatalf("connection manager is invalid: %v", err)
	}
}
