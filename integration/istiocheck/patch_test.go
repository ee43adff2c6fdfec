package istiocheck

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/core"

	serinv1alpha1 "github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/xds/istio"
	serinmodel "github.com/serin-dev/serin/xds/model"
	"github.com/serin-dev/serin/xds/translate"
)

// The mesh the patches land in, declared as Istio objects so that istiod's
// generator builds the route tables, clusters and listeners it would in a
// cluster: the HTTP service podinfo.test (9898), the gRPC service echo.test
// (8080), two TCP services sharing port 5432, and an ingress gateway
// routing podinfo.example.com to podinfo.
const mesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: podinfo, namespace: test}
spec:
  hosts: [podinfo.test.svc.cluster.local]
  addresses: [10.96.0.20]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9898, name: http, protocol: HTTP}]
  endpoints: [{address: 10.244.1.12}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: test}
spec:
  hosts: [echo.test.svc.cluster.local]
  addresses: [10.96.0.21]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: grpc, protocol: GRPC}]
  endpoints: [{address: 10.244.2.10}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcpdb, namespace: test}
spec:
  hosts: [tcpdb.test.svc.cluster.local]
  addresses: [10.96.0.30]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.244.1.5}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: otherdb, namespace: test}
spec:
  hosts: [otherdb.test.svc.cluster.local]
  addresses: [10.96.0.31]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.244.1.6}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public-gateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [podinfo.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: podinfo-public, namespace: test}
spec:
  hosts: [podinfo.example.com]
  gateways: [istio-system/public-gateway]
  http:
  - name: public
    route:
    - destination: {host: podinfo.test.svc.cluster.local, port: {number: 9898}}
`

// meshVirtualService gives podinfo's mesh traffic two routes of its own,
// as a user's VirtualService would; both must end up on serin's cluster.
const meshVirtualService = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: podinfo, namespace: test}
spec:
  hosts: [podinfo.test.svc.cluster.local]
  http:
  - name: api
    match: [{uri: {prefix: /api}}]
    timeout: 3s
    route:
    - destination: {host: podinfo.test.svc.cluster.local}
  - name: rest
    route:
    - destination: {host: podinfo.test.svc.cluster.local}
`

// generate builds istiod's configuration with the case's EnvoyFilters.
func generate(t *testing.T, c testCase, extra string) *core.ConfigGenTest {
	t.Helper()
	return core.NewConfigGenTest(t, core.TestOptions{ConfigString: mesh + extra + "---\n" + envoyFilterYAML(t, c)})
}

// sidecar is a client pod's proxy in namespace ns (the release's own
// namespace, unless a test says otherwise: that is where serin's sidecar
// EnvoyFilter applies); marked says it carries serin's bootstrap override
// (its node metadata).
func sidecar(cg *core.ConfigGenTest, ns string, marked bool) *model.Proxy {
	md := &model.NodeMetadata{Namespace: ns}
	if marked {
		md.Raw = map[string]any{istio.ProxyMetadataKey: istio.BootstrapProxyMetadata}
	}
	return cg.SetupProxy(&model.Proxy{ConfigNamespace: ns, Metadata: md})
}

func gateway(cg *core.ConfigGenTest) *model.Proxy {
	labels := map[string]string{"istio": "ingressgateway"}
	return cg.SetupProxy(&model.Proxy{
		Type:            model.Router,
		ConfigNamespace: "istio-system",
		Labels:          labels,
		Metadata: &model.NodeMetadata{
			Namespace: "istio-system",
			Labels:    labels,
			Raw:       map[string]any{istio.ProxyMetadataKey: istio.BootstrapProxyMetadata},
		},
	})
}

func findRouteTable(t *testing.T, rcs []*routev3.RouteConfiguration, name string) *routev3.RouteConfiguration {
	t.Helper()
	for _, rc := range rcs {
		if rc.GetName() == name {
			return rc
		}
	}
	t.Fatalf("istiod built no route table %q", name)
	return nil
}

func findVirtualHost(t *testing.T, rc *routev3.RouteConfiguration, match func(*routev3.VirtualHost) bool) *routev3.VirtualHost {
	t.Helper()
	for _, vh := range rc.GetVirtualHosts() {
		if match(vh) {
			return vh
		}
	}
	t.Fatalf("no such virtual host in %q", rc.GetName())
	return nil
}

func routeNames(vh *routev3.VirtualHost) []string {
	var out []string
	for _, r := range vh.GetRoutes() {
		out = append(out, r.GetName())
	}
	return out
}

// serinClusters lists the clusters of the proxy that serin added, checking
// that each still fetches its endpoints from serin.
func serinClusters(t *testing.T, cs []*clusterv3.Cluster, c testCase) []string {
	t.Helper()
	var out []string
	for _, cl := range cs {
		if !strings.HasPrefix(cl.GetName(), "serin/") {
			continue
		}
		out = append(out, cl.GetName())
		src := cl.GetEdsClusterConfig().GetEdsConfig().GetApiConfigSource().GetGrpcServices()
		if len(src) != 1 {
			t.Errorf("%s: EDS source %v", cl.GetName(), cl.GetEdsClusterConfig())
			continue
		}
		switch c.Options.Translate.Source.Kind {
		case translate.SourceStaticCluster:
			if src[0].GetEnvoyGrpc().GetClusterName() != translate.DefaultXDSCluster {
				t.Errorf("%s: EDS from %v", cl.GetName(), src[0])
			}
		case translate.SourceGoogleGRPC:
			if src[0].GetGoogleGrpc().GetTargetUri() != c.Options.Translate.Source.TargetURI {
				t.Errorf("%s: EDS from %v", cl.GetName(), src[0])
			}
		}
		if err := translate.ValidateMessage(cl); err != nil {
			t.Errorf("%s after istiod: %v", cl.GetName(), err)
		}
	}
	slices.Sort(out)
	return out
}

func wantClusters(r *serinmodel.Release) []string {
	return []string{r.ClusterName(), r.TrackClusterName(serinv1alpha1.TrackCanary), r.TrackClusterName(serinv1alpha1.TrackStable)}
}

// wantRoutes is the route order after patching: serin's inserted routes in
// translate's order, then istiod's own routes.
func wantRoutes(t *testing.T, c testCase, istiods ...string) []string {
	t.Helper()
	res, err := translate.Translate(&c.Release, c.Options.Translate)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range res.Routes[0].GetVirtualHosts()[0].GetRoutes() {
		if r.GetName() != translate.DefaultRouteName {
			out = append(out, r.GetName())
		}
	}
	return append(out, istiods...)
}

// checkMerged checks one of istiod's routes after the MERGE: serin's
// weighted cluster, serin's policies, Istio's own match kept.
func checkMerged(t *testing.T, r *routev3.Route, c testCase) {
	t.Helper()
	a := r.GetRoute()
	if a.GetCluster() != c.Release.ClusterName() {
		t.Errorf("route %q goes to %q, want serin's weighted cluster", r.GetName(), a.GetCluster())
	}
	if r.GetMatch() == nil {
		t.Errorf("route %q lost its match", r.GetName())
	}
	if m := c.Release.Mirror; m != nil {
		mp := a.GetRequestMirrorPolicies()
		if len(mp) != 1 || mp[0].GetCluster() != c.Release.TrackClusterName(serinv1alpha1.TrackCanary) || mp[0].GetRuntimeFraction().GetDefaultValue().GetNumerator() != m.Percent {
			t.Errorf("route %q mirror policies %v", r.GetName(), mp)
		}
	}
	if sa := c.Release.SessionAffinity; sa != nil {
		found := false
		for _, h := range r.GetResponseHeadersToAdd() {
			found = found || (h.GetHeader().GetKey() == "set-cookie" && strings.HasPrefix(h.GetHeader().GetValue(), "%UPSTREAM_METADATA(serin:cookie)%; "))
		}
		if !found {
			t.Errorf("route %q sets no session cookie", r.GetName())
		}
	}
	if c.Release.CORS != nil && r.GetTypedPerFilterConfig()[translate.CORSFilter] == nil {
		t.Errorf("route %q has no CORS policy", r.GetName())
	}
	if lb := c.Release.LoadBalancer; lb != nil && lb.Hash != nil && len(a.GetHashPolicy()) != 1 {
		t.Errorf("route %q hash policies %v", r.GetName(), a.GetHashPolicy())
	}
	if rp := c.Release.Retries; rp != nil && a.GetRetryPolicy().GetNumRetries().GetValue() != rp.Attempts {
		t.Errorf("route %q retries %v", r.GetName(), a.GetRetryPolicy())
	}
	if d := c.Release.Timeout; d > 0 && a.GetTimeout().AsDuration() != d {
		t.Errorf("route %q timeout %v, want %v", r.GetName(), a.GetTimeout().AsDuration(), d)
	}
}

// TestIstiodPatchesSidecars is check (c) for sidecars: istiod's generator,
// with serin's EnvoyFilters, routes each HTTP and gRPC release's mesh
// traffic through serin's routes and clusters, and the patched route table
// passes serin's recursive validation.
func TestIstiodPatchesSidecars(t *testing.T) {
	for name, c := range loadCases(t) {
		if c.Release.Protocol == serinmodel.TCP {
			continue
		}
		for _, withVS := range []bool{false, true} {
			if withVS && c.Release.Service != "podinfo" {
				continue
			}
			t.Run(fmt.Sprintf("%s/virtualservice=%v", name, withVS), func(t *testing.T) {
				extra := ""
				istiodRoutes := []string{"default"}
				if withVS {
					extra, istiodRoutes = "---\n"+meshVirtualService, []string{"api", "rest"}
				}
				cg := generate(t, c, extra)
				p := sidecar(cg, c.Release.Namespace, true)

				if got, want := serinClusters(t, cg.Clusters(p), c), wantClusters(&c.Release); !slices.Equal(got, want) {
					t.Errorf("serin's clusters on the sidecar: %v, want %v", got, want)
				}
				rc := findRouteTable(t, cg.Routes(p), fmt.Sprint(c.Release.Port))
				vh := findVirtualHost(t, rc, func(vh *routev3.VirtualHost) bool { return vh.GetName() == istio.SidecarVirtualHost(&c.Release) })
				if got, want := routeNames(vh), wantRoutes(t, c, istiodRoutes...); !slices.Equal(got, want) {
					t.Fatalf("routes %v, want %v", got, want)
				}
				for _, r := range vh.GetRoutes() {
					if strings.HasPrefix(r.GetName(), "serin-") {
						continue
					}
					checkMerged(t, r, c)
				}
				if err := translate.ValidateMessage(rc); err != nil {
					t.Errorf("patched route table %q: %v", rc.GetName(), err)
				}
				for _, other := range rc.GetVirtualHosts() {
					if other != vh && slices.ContainsFunc(other.GetRoutes(), func(r *routev3.Route) bool { return strings.HasPrefix(r.GetRoute().GetCluster(), "serin/") }) {
						t.Errorf("virtual host %q of another service was patched", other.GetName())
					}
				}
			})
		}
	}
}

// TestIstiodLeavesUnmarkedProxies: in bootstrap-override mode a proxy
// without serin's node metadata has no serin-xds cluster, so it must get
// none of the patches (a cluster pointing at a missing xDS cluster would
// fail its whole CDS update).
func TestIstiodLeavesUnmarkedProxies(t *testing.T) {
	c := loadCases(t)["http-bootstrap-override"]
	cg := generate(t, c, "")
	p := sidecar(cg, c.Release.Namespace, false)
	if got := serinClusters(t, cg.Clusters(p), c); len(got) != 0 {
		t.Errorf("unmarked proxy got %v", got)
	}
	rc := findRouteTable(t, cg.Routes(p), "9898")
	vh := findVirtualHost(t, rc, func(vh *routev3.VirtualHost) bool { return vh.GetName() == istio.SidecarVirtualHost(&c.Release) })
	if got := routeNames(vh); !slices.Equal(got, []string{"default"}) || !strings.HasPrefix(vh.GetRoutes()[0].GetRoute().GetCluster(), "outbound|9898||") {
		t.Errorf("unmarked proxy's routes were patched: %v", got)
	}
}

// TestIstiodSidecarScope: the sidecar EnvoyFilter lives in the release's
// namespace, so istiod patches that namespace's proxies only; a client in
// another namespace keeps Istio's own routes, unless the filter is mesh
// wide (root namespace).
func TestIstiodSidecarScope(t *testing.T) {
	for _, meshWide := range []bool{false, true} {
		t.Run(fmt.Sprintf("meshWideSidecars=%t", meshWide), func(t *testing.T) {
			c := loadCases(t)["http-bootstrap-override"]
			c.Options.MeshWideSidecars = meshWide
			cg := generate(t, c, "")
			own, elsewhere := serinClusters(t, cg.Clusters(sidecar(cg, c.Release.Namespace, true)), c), serinClusters(t, cg.Clusters(sidecar(cg, "client", true)), c)
			if want := wantClusters(&c.Release); !slices.Equal(own, want) {
				t.Errorf("a client in the release's namespace got %v, want %v", own, want)
			}
			if meshWide != (len(elsewhere) > 0) {
				t.Errorf("a client in another namespace got serin's clusters %v", elsewhere)
			}
		})
	}
}

// TestIstiodPatchesGateway is check (c) for an ingress gateway: the
// gateway's virtual host for the release's public host gets serin's routes
// and its VirtualService route is merged onto serin's cluster.
func TestIstiodPatchesGateway(t *testing.T) {
	c := loadCases(t)["gateway"]
	cg := generate(t, c, "")
	p := gateway(cg)
	if got, want := serinClusters(t, cg.Clusters(p), c), wantClusters(&c.Release); !slices.Equal(got, want) {
		t.Errorf("serin's clusters on the gateway: %v, want %v", got, want)
	}
	rc := findRouteTable(t, cg.Routes(p), "http.80")
	vh := findVirtualHost(t, rc, func(vh *routev3.VirtualHost) bool { return slices.Contains(vh.GetDomains(), "podinfo.example.com") })
	if got, want := routeNames(vh), wantRoutes(t, c, "public"); !slices.Equal(got, want) {
		t.Fatalf("gateway routes %v, want %v", got, want)
	}
	checkMerged(t, vh.GetRoutes()[len(vh.GetRoutes())-1], c)
	if err := translate.ValidateMessage(rc); err != nil {
		t.Errorf("patched gateway route table: %v", err)
	}
}

// TestIstiodPatchesTCP is check (c) for a TCP release: the service's own
// outbound listener proxies to serin's weighted cluster, keeping Istio's
// stat prefix, and the other TCP service on the same port is untouched.
func TestIstiodPatchesTCP(t *testing.T) {
	c := loadCases(t)["tcp"]
	cg := generate(t, c, "")
	p := sidecar(cg, c.Release.Namespace, true)
	if got, want := serinClusters(t, cg.Clusters(p), c), wantClusters(&c.Release); !slices.Equal(got, want) {
		t.Errorf("serin's clusters: %v, want %v", got, want)
	}
	seen := map[string]*tcpproxyv3.TcpProxy{}
	for _, l := range cg.Listeners(p) {
		if l.GetName() != "10.96.0.30_5432" && l.GetName() != "10.96.0.31_5432" {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if f.GetName() != translate.TCPProxyFilter {
					continue
				}
				tp := &tcpproxyv3.TcpProxy{}
				if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
					t.Fatal(err)
				}
				seen[l.GetName()] = tp
			}
		}
		if err := translate.ValidateMessage(&listenerv3.Listener{Name: l.GetName(), FilterChains: l.GetFilterChains()}); err != nil {
			t.Errorf("listener %s after the patch: %v", l.GetName(), err)
		}
	}
	mine, other := seen["10.96.0.30_5432"], seen["10.96.0.31_5432"]
	if mine == nil || other == nil {
		t.Fatalf("istiod built no tcp_proxy for both services: %v", seen)
	}
	if mine.GetCluster() != c.Release.ClusterName() || mine.GetStatPrefix() != "outbound|5432||tcpdb.test.svc.cluster.local" {
		t.Errorf("tcpdb's tcp_proxy: cluster %q stat prefix %q", mine.GetCluster(), mine.GetStatPrefix())
	}
	if other.GetCluster() != "outbound|5432||otherdb.test.svc.cluster.local" {
		t.Errorf("otherdb's tcp_proxy was patched: %q", other.GetCluster())
	}
}
