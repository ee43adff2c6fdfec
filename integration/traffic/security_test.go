package traffic

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	apimeta "k8s.io/apimachinery/pkg/api/meta"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/harness"
)

const (
	endpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	routeType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// privateService is podinfo's Service in ns, visible only in ns (Istio's
// exportTo ".").
func privateService(ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: %s
  annotations: {networking.istio.io/exportTo: "."}
spec:
  selector: {app: podinfo}
  ports: [{name: grpc, port: 9999, appProtocol: grpc}]
`, ns)
}

// testSecurity attacks a release of namespace A, whose Service is exported
// to A only, from clients without a certificate and from a proxy of
// namespace B: none of them gets A's resources, B's NACK does not halt A,
// B's subscription does not hold A's steps, and load reports from B about
// A's clusters are dropped. A's own client gets and applies every step.
func testSecurity(t *testing.T, e *env) {
	ns := e.c.Namespace(t)
	r := &release{t: t, e: e, ns: ns, sim: harness.RunPodsim(t, e.c, ns)}
	r.kubectlApply(privateService(ns) + "---\n" + canaryYAML(ns, grpcService, `    interval: 1s
    stepWeights: [10, 20]
`+e.gateHooks()) + "---\n" + harness.PodinfoDeployment(ns, v1, 3, ""))
	r.waitFor("phase Initialized", time.Minute, func(c *v1alpha1.Canary) bool { return c.Status.Phase == v1alpha1.PhaseInitialized })
	conn := r.client("owner") // A's own proxyless client, with A's certificate
	r.deploy(v2)
	r.waitHeldAt(0)
	r.waitCanaryServing(1)
	r.step(10)

	metric := func(name string, labels ...string) float64 {
		t.Helper()
		v, err := e.s.Metric(name, labels...)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cluster := "serin/" + ns + "/podinfo/9999"
	names := map[string][]string{
		clusterType: {cluster}, endpointType: {cluster}, routeType: {cluster}, listenerType: {"podinfo." + ns + ":9999"},
	}
	addr := e.s.XDSAddress()
	owner, err := harness.XDSCredentialsFor(context.Background(), addr, ns)
	if err != nil {
		t.Fatal(err)
	}

	// Without a client certificate: plaintext, and TLS that trusts serin
	// but shows no certificate.
	for what, opt := range map[string]grpc.DialOption{
		"plaintext":                        grpc.WithTransportCredentials(insecure.NewCredentials()),
		"TLS without a client certificate": grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots(t, owner), MinVersion: tls.VersionTLS12})),
	} {
		if got, err := fetch(addr, opt, clusterType, names[clusterType], ""); err == nil || got > 0 {
			t.Errorf("%s: %d resources, error %v; want no resources and an error", what, got, err)
		}
		if err := reportLoad(addr, opt, cluster); err == nil {
			t.Errorf("%s: load report accepted", what)
		}
	}

	// A proxy of namespace B, with a certificate for B from `serin xds-cert`.
	other := e.c.Namespace(t)
	bin, err := harness.Binary()
	if err != nil {
		t.Fatal(err)
	}
	bCreds, err := harness.IssueXDSCredentials(context.Background(), bin, e.c.Kubeconfig, other, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := bCreds.DialOption()
	if err != nil {
		t.Fatal(err)
	}
	for typ, n := range names {
		if got, err := fetch(addr, b, typ, n, ""); err != nil || got > 0 {
			t.Errorf("B asked for %s %v: %d resources (error %v), want none", typ, n, got, err)
		}
	}
	// A wildcard gets other namespaces' public releases, never A's.
	if got, err := wildcardClusters(addr, b); err != nil || slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, cluster) }) {
		t.Errorf("B's wildcard CDS got %v (error %v), want none of A's", got, err)
	}
	nacks := metric("serin_xds_nack_total", "type_url", endpointType)
	// B subscribes to A's endpoints and holds the stream open, NACKing
	// whatever it is sent and never ACKing.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _, _ = fetchUntil(ctx, addr, b, endpointType, names[endpointType], "B rejects everything") }()
	dropped := metric("serin_xds_load_reports_dropped_total", "reason", "denied")
	if err := reportLoad(addr, b, cluster); err != nil {
		t.Fatalf("B's load reporting stream: %v", err)
	}
	for deadline := time.Now().Add(20 * time.Second); metric("serin_xds_load_reports_dropped_total", "reason", "denied") == dropped; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("B's load report about A's cluster was not dropped")
		}
	}

	// A's release goes on while B is subscribed: B neither holds nor halts it.
	r.step(20)
	c := r.canary()
	if cond := apimeta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionTrafficApplied); cond == nil || cond.Reason == "Rejected" {
		t.Errorf("A's release was halted: %s", summary(c))
	}
	if n := metric("serin_xds_nack_total", "type_url", endpointType); n != nacks {
		t.Errorf("serin_xds_nack_total of endpoints went from %g to %g: B's NACK counted", nacks, n)
	}
	checkShare(t, "owner_after_attacks", 20, send(conn, 2000))
}

func roots(t *testing.T, c harness.XDSCredentials) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(c.Dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in ca.crt")
	}
	return p
}

// fetch asks serin for names of one type over a new ADS stream and
// returns how many resources the first response holds; nack, if set,
// rejects that response.
func fetch(addr string, opt grpc.DialOption, typeURL string, names []string, nack string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return fetchUntil(ctx, addr, opt, typeURL, names, nack)
}

// wildcardClusters asks for every cluster (a wildcard CDS request) and returns
// the names of the first response.
func wildcardClusters(addr string, opt grpc.DialOption) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := grpc.NewClient(addr, opt)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "attacker"}, TypeUrl: clusterType}); err != nil {
		return nil, err
	}
	resp, err := st.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, a := range resp.GetResources() {
		var c clusterv3.Cluster
		if err := a.UnmarshalTo(&c); err != nil {
			return nil, err
		}
		names = append(names, c.GetName())
	}
	return names, nil
}

// fetchUntil is fetch on a stream that stays open until ctx ends when nack
// is set.
func fetchUntil(ctx context.Context, addr string, opt grpc.DialOption, typeURL string, names []string, nack string) (int, error) {
	cc, err := grpc.NewClient(addr, opt)
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return 0, err
	}
	req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "attacker"}, TypeUrl: typeURL, ResourceNames: names}
	if err := st.Send(req); err != nil {
		return 0, err
	}
	resp, err := st.Recv()
	if err != nil {
		return 0, err
	}
	if nack != "" {
		req.ResponseNonce, req.ErrorDetail = resp.GetNonce(), &statuspb.Status{Code: 3, Message: nack}
		if err := st.Send(req); err != nil {
			return 0, err
		}
		<-ctx.Done()
	}
	return len(resp.GetResources()), nil
}

// reportLoad sends one load report saying every request to cluster's
// canary failed.
func reportLoad(addr string, opt grpc.DialOption, cluster string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := grpc.NewClient(addr, opt)
	if err != nil {
		return err
	}
	defer cc.Close()
	st, err := lrsv3.NewLoadReportingServiceClient(cc).StreamLoadStats(ctx)
	if err != nil {
		return err
	}
	if err := st.Send(&lrsv3.LoadStatsRequest{Node: &corev3.Node{Id: "attacker"}, ClusterStats: []*endpointv3.ClusterStats{{
		ClusterName: cluster,
		UpstreamLocalityStats: []*endpointv3.UpstreamLocalityStats{{
			Locality:            &corev3.Locality{Region: "serin", SubZone: "canary"},
			TotalErrorRequests:  10000,
			TotalIssuedRequests: 10000,
		}},
	}}}); err != nil {
		return err
	}
	_, err = st.Recv()
	return err
}
