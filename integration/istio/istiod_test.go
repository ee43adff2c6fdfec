package istio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/xds/translate"
)

// istiodRelease is podinfo with its Service (istiod builds a proxy's
// outbound cluster and route table from Services), a client pod whose
// sidecar the test plays, and a Canary that stays at weight 50 once a
// release starts (its confirm-promotion gate answers no: nothing listens
// there).
const istiodRelease = `apiVersion: v1
kind: Service
metadata: {name: podinfo, namespace: %[1]s}
spec:
  selector: {app: podinfo}
  ports: [{name: http, port: 9898, targetPort: 9898}]
---
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: podinfo, namespace: %[1]s}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service:
    port: 9898
    gateways: [istio-system/public-gateway]
    hosts: [podinfo.%[1]s.example.com]
  analysis:
    interval: 1s
    stepWeight: 50
    maxWeight: 50
    webhooks: [{name: hold, type: confirm-promotion, url: "http://127.0.0.1:1/approve"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo, namespace: %[1]s, annotations: {serin.dev/canary: enabled}}
spec:
  replicas: 1
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers: [{name: app, image: "ghcr.io/stefanprodan/podinfo:%[2]s", ports: [{name: http, containerPort: 9898}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: %[1]s, labels: {app: client}}
spec:
  containers: [{name: app, image: curl}]
`

// publicGateway is the ingress gateway of Flagger's Istio guide (for
// *.example.com, which its namespace thereby owns), and the pod whose proxy
// the test plays.
const publicGateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public-gateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*.example.com"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  containers: [{name: istio-proxy, image: proxyv2}]
`

// TestIstiodAppliesEnvoyFilters runs Istio's control plane, istiod, against
// the local API server and plays a sidecar of the release's namespace on
// its ADS stream, in both of serin's Istio modes: istiod itself applies
// serin's EnvoyFilter (its own metrics say applied, none failed), the
// proxy's clusters, listeners and routes pass Envoy's validation, serin's
// clusters take their endpoints from serin (as the bootstrap's static
// cluster or a google_grpc target), the port's routes send to serin's
// weighted cluster, and serin answers that cluster's EDS with the
// release's weights.
func TestIstiodAppliesEnvoyFilters(t *testing.T) {
	c := cluster.Get(t)
	harness.InstallIstioCRDs(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ist, err := c.StartIstiod(ctx, cluster.IstiodOptions{Env: []string{"PILOT_ENVOY_FILTER_STATS=true"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ist.Kill)
	for _, mode := range []struct{ name, serinXDS string }{
		{"bootstrap", "bootstrap"},
		{"google-grpc", "google-grpc"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ns := c.Namespace(t)
			s := harness.Install(t, c, harness.Options{
				Sets: []string{"istio.mode=" + mode.name, "istio.bootstrap.namespaces={" + ns + "}"},
				ExtraArgs: []string{"--istio-mode=" + mode.name, "--istio-xds-address=serin-xds.serin-system.svc:18000",
					"--istio-bootstrap-namespaces=" + ns},
			})
			checkIstiod(ctx, t, c, ist, s, ns, mode.serinXDS)
		})
	}
}

func checkIstiod(ctx context.Context, t *testing.T, c *cluster.Cluster, ist *cluster.Istiod, s *harness.Serin, ns, serinXDS string) {
	gwPod := "ingressgateway-" + serinXDS
	if _, err := c.Kubectl(ctx, fmt.Sprintf(publicGateway, gwPod), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	// As in Flagger's guide, the Canary names the gateway and a public host
	// and nothing else routes it: the gateway's namespace grants the host,
	// and serin writes the VirtualService that binds it to the gateway.
	grant := fmt.Sprintf("%s=%s/podinfo.%s.example.com", v1alpha1.AnnotationHostGrants, ns, ns)
	if _, err := c.Kubectl(ctx, "", "annotate", "--overwrite", "namespace", "istio-system", grant); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kubectl(ctx, fmt.Sprintf(istiodRelease, ns, "6.0.0"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	waitPhase(ctx, t, c, ns, "Initialized")
	var vs string
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		vs, err = c.Kubectl(ctx, "", "get", "virtualservices.networking.istio.io", "podinfo", "-n", ns, "-o",
			`jsonpath={.metadata.labels.app\.kubernetes\.io/managed-by} {.spec.hosts} {.spec.gateways}`)
		if err == nil {
			break
		}
	}
	// Its hosts are the release's: the public one and, as Flagger's, the
	// Service's own names.
	if err != nil || !strings.HasPrefix(vs, "serin [") || !strings.Contains(vs, fmt.Sprintf(`"podinfo.%s.example.com"`, ns)) ||
		!strings.HasSuffix(vs, ` ["istio-system/public-gateway"]`) {
		t.Fatalf("serin's VirtualService (managed-by, hosts, gateways): %q (%v)", vs, err)
	}
	if _, err := c.Kubectl(ctx, fmt.Sprintf(istiodRelease, ns, "6.0.1"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	waitWeight(ctx, t, c, ns, "50")
	ip, err := c.Kubectl(ctx, "", "get", "pod", "client", "-n", ns, "-o", "jsonpath={.status.podIP}")
	if err != nil || ip == "" {
		t.Fatalf("client pod IP %q: %v", ip, err)
	}
	node := &corev3.Node{
		Id: fmt.Sprintf("sidecar~%s~client.%s~%s.svc.cluster.local", ip, ns, ns),
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"NAMESPACE":     structpb.NewStringValue(ns),
			"CLUSTER_ID":    structpb.NewStringValue("Kubernetes"),
			"ISTIO_VERSION": structpb.NewStringValue("1.29.0"),
			"SERIN_XDS":     structpb.NewStringValue(serinXDS),
			"LABELS":        structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"app": structpb.NewStringValue("client")}}),
		}},
	}
	want := fmt.Sprintf("serin/%s/podinfo/9898", ns)

	// Clusters: serin's three, with their endpoints from serin.
	var clusters []*clusterv3.Cluster
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		// A new stream each time: a proxy's first request gets every cluster.
		clusters = unpackAll[*clusterv3.Cluster](t, dialADS(ctx, t, ist.XDSAddress, node).get(t, resourcev3.ClusterType, nil))
		if slices.ContainsFunc(clusters, func(cl *clusterv3.Cluster) bool { return cl.GetName() == want }) || time.Now().After(deadline) {
			break
		}
	}
	ads := dialADS(ctx, t, ist.XDSAddress, node)
	var serinClusters []string
	for _, cl := range clusters {
		if err := validate(cl); err != nil {
			t.Errorf("istiod's cluster %s is invalid: %v", cl.GetName(), err)
		}
		if strings.HasPrefix(cl.GetName(), want) {
			serinClusters = append(serinClusters, cl.GetName())
			checkEDSSource(t, cl, serinXDS)
		}
	}
	slices.Sort(serinClusters)
	if !slices.Equal(serinClusters, []string{want, want + "/canary", want + "/stable"}) {
		t.Fatalf("istiod sent serin's clusters %v (of %d), want %s and its tracks; istiod log:\n%s", serinClusters, len(clusters), want, cluster.Tail(ist.LogPath, 20))
	}

	// Listeners and the port's routes: the default route sends to serin's
	// weighted cluster.
	var routeNames []string
	for _, l := range unpackAll[*listenerv3.Listener](t, ads.get(t, resourcev3.ListenerType, nil)) {
		if err := validate(l); err != nil {
			t.Errorf("istiod's listener %s is invalid: %v", l.GetName(), err)
		}
		routeNames = append(routeNames, rdsNames(l)...)
	}
	if !slices.Contains(routeNames, "9898") {
		t.Fatalf("no listener of istiod's names route table 9898: %v", routeNames)
	}
	routes := unpackAll[*routev3.RouteConfiguration](t, ads.get(t, resourcev3.RouteType, []string{"9898"}))
	found := false
	for _, rc := range routes {
		if err := validate(rc); err != nil {
			t.Errorf("istiod's route table %s is invalid: %v", rc.GetName(), err)
		}
		for _, vh := range rc.GetVirtualHosts() {
			if !slices.Contains(vh.GetDomains(), fmt.Sprintf("podinfo.%s.svc.cluster.local", ns)) {
				continue
			}
			for _, r := range vh.GetRoutes() {
				found = found || r.GetRoute().GetCluster() == want
			}
		}
	}
	if !found {
		t.Errorf("no route of podinfo's virtual host sends to %s: %v", want, routes)
	}

	// An ingress gateway's proxy: serin's clusters, and the release's host
	// routed to serin's weighted cluster (the route of serin's
	// VirtualService, merged by serin's gateway EnvoyFilter in the root
	// namespace).
	gwIP, err := c.Kubectl(ctx, "", "get", "pod", gwPod, "-n", "istio-system", "-o", "jsonpath={.status.podIP}")
	if err != nil || gwIP == "" {
		t.Fatalf("gateway pod IP %q: %v", gwIP, err)
	}
	gateway := &corev3.Node{
		Id: fmt.Sprintf("router~%s~%s.istio-system~istio-system.svc.cluster.local", gwIP, gwPod),
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"NAMESPACE":     structpb.NewStringValue("istio-system"),
			"CLUSTER_ID":    structpb.NewStringValue("Kubernetes"),
			"ISTIO_VERSION": structpb.NewStringValue("1.29.0"),
			"SERIN_XDS":     structpb.NewStringValue(serinXDS),
			"LABELS":        structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"istio": structpb.NewStringValue("ingressgateway")}}),
		}},
	}
	checkGateway(ctx, t, ist, gateway, ns, want, serinXDS)

	// istiod says it applied the patches, and none failed. It records what
	// a push applied at its next push: a Service change makes one.
	nudge := fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: nudge, namespace: %s}\nspec: {ports: [{port: 80}]}\n", ns)
	if _, err := c.Kubectl(ctx, nudge, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	checkIstiodMetrics(t, ist, ns)

	// serin answers the cluster's EDS with the release's weights.
	checkWeights(ctx, t, s, ns, want)
}

// checkGateway plays an ingress gateway's proxy: istiod sends it serin's
// clusters and routes the release's host to serin's weighted cluster.
func checkGateway(ctx context.Context, t *testing.T, ist *cluster.Istiod, node *corev3.Node, ns, want, serinXDS string) {
	t.Helper()
	var clusters []*clusterv3.Cluster
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		clusters = unpackAll[*clusterv3.Cluster](t, dialADS(ctx, t, ist.XDSAddress, node).get(t, resourcev3.ClusterType, nil))
		if slices.ContainsFunc(clusters, func(cl *clusterv3.Cluster) bool { return cl.GetName() == want }) || time.Now().After(deadline) {
			break
		}
	}
	found := 0
	for _, cl := range clusters {
		if err := validate(cl); err != nil {
			t.Errorf("istiod's gateway cluster %s is invalid: %v", cl.GetName(), err)
		}
		if strings.HasPrefix(cl.GetName(), want) {
			found++
			checkEDSSource(t, cl, serinXDS)
		}
	}
	if found != 3 {
		t.Fatalf("the gateway got %d of serin's clusters for %s", found, want)
	}
	ads := dialADS(ctx, t, ist.XDSAddress, node)
	var routeNames []string
	for _, l := range unpackAll[*listenerv3.Listener](t, ads.get(t, resourcev3.ListenerType, nil)) {
		if err := validate(l); err != nil {
			t.Errorf("istiod's gateway listener %s is invalid: %v", l.GetName(), err)
		}
		routeNames = append(routeNames, rdsNames(l)...)
	}
	if len(routeNames) == 0 {
		t.Fatal("the gateway's listeners name no route table")
	}
	host := "podinfo." + ns + ".example.com"
	routed := false
	for _, rc := range unpackAll[*routev3.RouteConfiguration](t, ads.get(t, resourcev3.RouteType, routeNames)) {
		if err := validate(rc); err != nil {
			t.Errorf("istiod's gateway route table %s is invalid: %v", rc.GetName(), err)
		}
		for _, vh := range rc.GetVirtualHosts() {
			if !slices.Contains(vh.GetDomains(), host) {
				continue
			}
			for _, r := range vh.GetRoutes() {
				routed = routed || r.GetRoute().GetCluster() == want
			}
		}
	}
	if !routed {
		t.Errorf("the gateway does not route %s to %s (route tables %v)", host, want, routeNames)
	}
}

// checkEDSSource: a serin cluster takes its endpoints from serin, through
// the bootstrap's static serin-xds cluster or a google_grpc target.
func checkEDSSource(t *testing.T, cl *clusterv3.Cluster, serinXDS string) {
	t.Helper()
	src := cl.GetEdsClusterConfig().GetEdsConfig().GetApiConfigSource()
	services := src.GetGrpcServices()
	if len(services) != 1 {
		t.Errorf("cluster %s: EDS source %v", cl.GetName(), src)
		return
	}
	switch serinXDS {
	case "bootstrap":
		if got := services[0].GetEnvoyGrpc().GetClusterName(); got != "serin-xds" {
			t.Errorf("cluster %s: EDS from cluster %q, want the bootstrap's serin-xds", cl.GetName(), got)
		}
	default:
		if got := services[0].GetGoogleGrpc().GetTargetUri(); got != "serin-xds.serin-system.svc:18000" {
			t.Errorf("cluster %s: EDS from %q, want serin's xDS Service", cl.GetName(), got)
		}
	}
}

// validate checks m as Envoy would (translate.ValidateMessage, every Any
// unpacked), except for the types of Istio's own Envoy extensions, which
// no Go package describes (its ALPN, metadata exchange and peer metadata
// filters).
func validate(m proto.Message) error {
	err := translate.ValidateMessage(m)
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	var left []error
	for _, e := range joined.Unwrap() {
		msg := e.Error()
		if strings.Contains(msg, "not in the proto registry: type.googleapis.com/io.istio.") ||
			strings.Contains(msg, "not in the proto registry: type.googleapis.com/istio.") ||
			strings.Contains(msg, "not in the proto registry: type.googleapis.com/envoy.tcp.metadataexchange.") {
			continue
		}
		left = append(left, e)
	}
	return errors.Join(left...)
}

// rdsNames are the route tables a listener's HTTP connection managers name.
func rdsNames(l *listenerv3.Listener) []string {
	var out []string
	for _, fc := range append(l.GetFilterChains(), l.GetDefaultFilterChain()) {
		for _, f := range fc.GetFilters() {
			hcm := &hcmv3.HttpConnectionManager{}
			if f.GetTypedConfig().MessageIs(hcm) && f.GetTypedConfig().UnmarshalTo(hcm) == nil {
				if n := hcm.GetRds().GetRouteConfigName(); n != "" {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// checkIstiodMetrics reads pilot_envoy_filter_status: serin's EnvoyFilter
// in ns applied to routes (istiod counts merges and inserts; cluster ADDs
// are not counted, and the clusters' presence above shows them applied),
// and no failed patch.
func checkIstiodMetrics(t *testing.T, ist *cluster.Istiod, ns string) {
	t.Helper()
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		resp, err := http.Get(ist.MonitoringURL) //nolint:noctx // test probe
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if strings.Contains(body, `pilot_envoy_filter_status{name="`+ns) || time.Now().After(deadline) {
			break
		}
	}
	var lines []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "pilot_envoy_filter_status") {
			lines = append(lines, l)
		}
	}
	for _, patch := range []string{"route"} {
		ok := slices.ContainsFunc(lines, func(l string) bool {
			return strings.Contains(l, `name="`+ns) && strings.Contains(l, `patch="`+patch+`"`) && strings.Contains(l, `result="applied"`) && strings.HasSuffix(l, " 1")
		})
		if !ok {
			t.Errorf("istiod did not report serin's %s patch in %s applied:\n%s", patch, ns, strings.Join(lines, "\n"))
		}
	}
	for _, l := range lines {
		if strings.Contains(l, `result="error"`) && !strings.HasSuffix(l, " 0") {
			t.Errorf("istiod reports a failed EnvoyFilter patch: %s", l)
		}
	}
	// Nor does its log: no error or warning about an EnvoyFilter, a patch
	// or the release's namespace.
	log, err := os.ReadFile(ist.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(log), "\n") {
		bad := strings.Contains(l, "\terror\t") || strings.Contains(l, "\twarn\t")
		about := strings.Contains(strings.ToLower(l), "envoyfilter") || strings.Contains(l, "patch") || strings.Contains(l, ns)
		if bad && about {
			t.Errorf("istiod logged: %s", l)
		}
	}
}

// checkWeights asks serin, as the namespace's proxy would, for the
// cluster's endpoints: stable and canary at 50 each.
func checkWeights(ctx context.Context, t *testing.T, s *harness.Serin, ns, name string) {
	t.Helper()
	conn, err := grpc.NewClient(s.XDSAddress(), harness.XDSDialOption(t, s.XDSAddress(), ns))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ads := newADS(ctx, t, conn, &corev3.Node{Id: "sidecar~10.0.0.9~client." + ns + "~" + ns + ".svc.cluster.local"})
	var got map[string]uint32
	for _, cla := range unpackAll[*endpointv3.ClusterLoadAssignment](t, ads.get(t, resourcev3.EndpointType, []string{name})) {
		got = map[string]uint32{}
		for _, le := range cla.GetEndpoints() {
			got[le.GetLocality().GetSubZone()] = le.GetLoadBalancingWeight().GetValue()
		}
	}
	if got["stable"] != 50 || got["canary"] != 50 {
		t.Errorf("serin's EDS for %s: locality weights %v, want stable 50 and canary 50", name, got)
	}
}

func waitPhase(ctx context.Context, t *testing.T, c *cluster.Cluster, ns, phase string) {
	t.Helper()
	waitJSONPath(ctx, t, c, ns, "{.status.phase}", phase)
}

func waitWeight(ctx context.Context, t *testing.T, c *cluster.Cluster, ns, weight string) {
	t.Helper()
	waitJSONPath(ctx, t, c, ns, "{.status.canaryWeight}", weight)
}

func waitJSONPath(ctx context.Context, t *testing.T, c *cluster.Cluster, ns, path, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got, _ = c.Kubectl(ctx, "", "get", "canaries.serin.dev", "podinfo", "-n", ns, "-o", "jsonpath="+path); got == want {
			return
		}
	}
	t.Fatalf("canary %s/podinfo: %s is %q, want %q", ns, path, got, want)
}

// ads is one ADS stream, asked for one type at a time.
type ads struct {
	st   discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node *corev3.Node
	// acked is the last version and nonce per type, sent with the next
	// request of the type.
	acked map[string]*discoveryv3.DiscoveryResponse
}

func dialADS(ctx context.Context, t *testing.T, addr string, node *corev3.Node) *ads {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return newADS(ctx, t, conn, node)
}

func newADS(ctx context.Context, t *testing.T, conn *grpc.ClientConn, node *corev3.Node) *ads {
	t.Helper()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &ads{st: st, node: node, acked: map[string]*discoveryv3.DiscoveryResponse{}}
}

// get asks for typeURL (names, or every resource when nil) and returns the
// resources of the first response of that type; responses of other types
// that arrive meanwhile are acknowledged.
func (a *ads) get(t *testing.T, typeURL string, names []string) []*anypb.Any {
	t.Helper()
	req := &discoveryv3.DiscoveryRequest{Node: a.node, TypeUrl: typeURL, ResourceNames: names}
	if last := a.acked[typeURL]; last != nil {
		req.VersionInfo, req.ResponseNonce = last.GetVersionInfo(), last.GetNonce()
	}
	if err := a.st.Send(req); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := a.st.Recv()
		if err != nil {
			t.Fatalf("ADS stream, waiting for %s: %v", typeURL, err)
		}
		a.acked[resp.GetTypeUrl()] = resp
		if resp.GetTypeUrl() == typeURL {
			return resp.GetResources()
		}
		ack := &discoveryv3.DiscoveryRequest{Node: a.node, TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
		if err := a.st.Send(ack); err != nil {
			t.Fatal(err)
		}
	}
}

// unpackAll unpacks resources of one type.
func unpackAll[M proto.Message](t *testing.T, res []*anypb.Any) []M {
	t.Helper()
	out := make([]M, 0, len(res))
	for _, r := range res {
		m, err := r.UnmarshalNew()
		if err != nil {
			t.Fatalf("unpack %s: %v", r.GetTypeUrl(), err)
		}
		typed, ok := m.(M)
		if !ok {
			t.Fatalf("resource of type %s", r.GetTypeUrl())
		}
		out = append(out, typed)
	}
	return out
}
