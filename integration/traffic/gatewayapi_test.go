package traffic

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

// testGatewayAPI runs releases whose provider is gatewayapi:v1 with
// Istio's control plane, istiod, running against the cluster: serin writes
// a Gateway API route on the Service (GAMMA), istiod accepts it and its
// proxies acknowledge the change (what serin waits for), and proxyless
// gRPC clients connected to istiod, not to serin, see the split serin
// sets.
func testGatewayAPI(t *testing.T, e *env) {
	ist := e.ist
	for _, tc := range []struct{ name, service, kind string }{
		{"HTTPRoute", "{port: 9999}", "HTTPRoute"},
		{"GRPCRoute", "{port: 9999, appProtocol: grpc, portName: grpc}", "GRPCRoute"},
	} {
		t.Run(tc.name, func(t *testing.T) { testRouteWeights(t, e, ist, tc.service, tc.kind) })
	}
	t.Run("ABHeader", func(t *testing.T) { testRouteAB(t, e, ist) })
	t.Run("ABHeaderCCore", func(t *testing.T) { testRouteABCCore(t, e, ist) })
	t.Run("FirstAnswer", func(t *testing.T) { testFirstAnswer(t, e, ist) })
	t.Run("GatewayRefs", func(t *testing.T) { testGatewayRefs(t, e) })
}

// withProvider is a Canary manifest with spec.provider set.
func withProvider(provider string, service, analysis string) func(ns string) string {
	return func(ns string) string {
		return strings.Replace(canaryYAML(ns, service, analysis), "\nspec:\n", "\nspec:\n  provider: "+provider+"\n", 1)
	}
}

// istiodClient is a proxyless grpc-go client of istiod for the release's
// Service, after its first answer.
func (r *release) istiodClient(ist *cluster.Istiod) *grpc.ClientConn {
	r.t.Helper()
	harness.MirrorPodsToMesh(r.t, r.e.c, r.ns)
	conn := harness.IstiodXDSClient(r.t, ist.XDSAddress, r.ns, fmt.Sprintf("podinfo.%s.svc.cluster.local:9999", r.ns))
	// istiod has the pods' endpoints a moment after they are ready.
	deadline := time.Now().Add(time.Minute)
	for {
		tl := send(conn, 1)
		if tl.Errors == 0 {
			return conn
		}
		if time.Now().After(deadline) {
			r.t.Log(r.kubectl("get", "svc,pods,workloadentries,httproute,grpcroute", "-o", "wide"))
			for _, p := range []string{"/debug/endpointShardz", "/debug/configz"} {
				if b, err := httpGet(ist.DebugURL + p); err == nil {
					r.t.Log(p, string(b[:min(len(b), 6000)]))
				}
			}
			r.t.Fatalf("first call through istiod: %v", tl.LastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func testRouteWeights(t *testing.T, e *env, ist *cluster.Istiod, service, kind string) {
	mk := withProvider("gatewayapi:v1", service, `    interval: 1s
    threshold: 2
    stepWeights: [10, 50, 100]
`+e.gateHooks())
	r := newReleaseOf(t, e, func(ns string) string {
		// Steps wait for the C-core client of istiod too (see below).
		return strings.Replace(mk(ns), "progressDeadlineSeconds: 60", "progressDeadlineSeconds: 600", 1)
	})
	conn := r.istiodClient(ist)
	if tl := send(conn, 300); tl.Versions[v1] != 300 {
		t.Fatalf("before the release every call must reach %s: %v", v1, tl)
	}
	// An independent xDS implementation, gRPC C-core, connected to istiod
	// too (for the HTTPRoute, the kind Flagger's router writes).
	var cc *harness.CCoreClient
	if kind == "HTTPRoute" {
		// C-core 1.51 acknowledges istiod's pushes late (15 to 35 s seen
		// here), and serin waits for every proxy of istiod.
		r.slowApply = true
		cc = harness.NewIstiodCCoreClient(t, ist.XDSAddress, r.ns, fmt.Sprintf("podinfo.%s.svc.cluster.local:9999", r.ns))
	}
	r.deploy(v2)
	r.waitHeldAt(0)
	r.waitCanaryServing(1)
	r.checkRoute(kind)
	measure := func(w int32) {
		// serin counts a step applied once istiod's proxies acknowledged
		// it; a client installs the new picker a moment after its ACK.
		time.Sleep(200 * time.Millisecond)
		tl := send(conn, rpcsPerWeight)
		checkShare(t, "istiod_"+strings.ToLower(kind), int(w), tl)
		if cc != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			ct, err := cc.Send(ctx, 2000)
			if err != nil {
				t.Fatal(err)
			}
			checkShare(t, "istiod_ccore_"+strings.ToLower(kind), int(w), tally{Total: 2000, Versions: ct.Versions, Pods: ct.Pods, Errors: ct.Errors, LastErr: ct.LastErr})
		}
	}
	measure(0)
	for _, w := range []int32{10, 50, 100} {
		r.step(w)
		r.checkRoute(kind)
		measure(w)
	}
	r.e.gate(t, "/gate/open", r.ns)
	r.waitFor("phase Succeeded", 4*time.Minute, func(c *v1alpha1.Canary) bool { return c.Status.Phase == v1alpha1.PhaseSucceeded })
	time.Sleep(time.Second)
	if tl := send(conn, 1000); tl.Versions[v2] != 1000 {
		t.Errorf("after promotion every call must reach %s: %v", v2, tl)
	}
}

// checkRoute asserts the route serin wrote: named after the Service, on
// the Service (GAMMA), with the weight in status, accepted by istiod at
// its generation; and that the Canary's TrafficApplied condition says so.
func (r *release) checkRoute(kind string) {
	r.t.Helper()
	c := r.canary()
	key := client.ObjectKey{Namespace: r.ns, Name: "podinfo"}
	var parents []gwv1.RouteParentStatus
	var gen int64
	weights := map[string]int32{}
	switch kind {
	case "HTTPRoute":
		var rt gwv1.HTTPRoute
		if err := r.e.kube.Get(context.Background(), key, &rt); err != nil {
			r.t.Fatal(err)
		}
		parents, gen = rt.Status.Parents, rt.Generation
		for _, b := range rt.Spec.Rules[len(rt.Spec.Rules)-1].BackendRefs {
			weights[string(b.Name)] = *b.Weight
		}
	case "GRPCRoute":
		var rt gwv1.GRPCRoute
		if err := r.e.kube.Get(context.Background(), key, &rt); err != nil {
			r.t.Fatal(err)
		}
		parents, gen = rt.Status.Parents, rt.Generation
		for _, b := range rt.Spec.Rules[len(rt.Spec.Rules)-1].BackendRefs {
			weights[string(b.Name)] = *b.Weight
		}
	}
	want := map[string]int32{"podinfo-primary": 100 - c.Status.CanaryWeight, "podinfo-canary": c.Status.CanaryWeight}
	if !maps.Equal(weights, want) {
		r.t.Errorf("%s weights %v, want %v", kind, weights, want)
	}
	accepted := false
	for _, p := range parents {
		a := apimeta.FindStatusCondition(p.Conditions, "Accepted")
		if p.ControllerName == "istio.io/gateway-controller" && a != nil && a.Status == "True" && a.ObservedGeneration == gen {
			accepted = true
		}
	}
	if !accepted {
		r.t.Errorf("%s not accepted by istiod at generation %d: %+v", kind, gen, parents)
	}
}

// testRouteAB: an A/B release through the HTTPRoute: calls with the header
// reach the canary, all others stable.
func testRouteAB(t *testing.T, e *env, ist *cluster.Istiod) {
	r := newReleaseOf(t, e, withProvider("gatewayapi:v1", "{port: 9999}", abAnalysis+e.gateHooks()))
	conn := r.istiodClient(ist)
	r.deploy(v2)
	r.waitFor("A/B routing applied and held", time.Minute, func(c *v1alpha1.Canary) bool {
		return c.Status.Matching && c.Status.CanaryWeight == 0 && c.Status.Phase == v1alpha1.PhaseWaitingPromotion && trafficApplied(c, 0)
	})
	r.waitCanaryServing(1)
	time.Sleep(200 * time.Millisecond)
	with := send(conn, 1000, "x-canary", "insider")
	without := send(conn, 1000)
	t.Logf("FIGURE istiod_ab_header_canary_share=%.4f rpcs=%d no_header_canary=%d", float64(with.Versions[v2])/float64(with.Total), with.Total, without.Versions[v2])
	if with.Versions[v2] != with.Total {
		t.Errorf("calls with x-canary: insider must all reach the canary: %v", with)
	}
	if without.Versions[v1] != without.Total {
		t.Errorf("calls without the header must all stay on stable: %v", without)
	}
}

const abAnalysis = `    interval: 1s
    threshold: 2
    iterations: 1
    match:
    - headers:
        x-canary: {exact: insider}
`

// testRouteABCCore: the A/B release with a gRPC C-core client of istiod.
// C-core 1.51 refuses the header matchers istiod writes (string_match,
// which it does not know), so the release must halt at the A/B step with
// the rejection, naming the proxy, in TrafficApplied and the status
// message: a step is not applied while a proxy of istiod rejects it. A
// C-core that accepts them must then route the header to the canary.
func testRouteABCCore(t *testing.T, e *env, ist *cluster.Istiod) {
	r := newReleaseOf(t, e, func(ns string) string {
		mk := withProvider("gatewayapi:v1", "{port: 9999}", abAnalysis+e.gateHooks())
		return strings.Replace(mk(ns), "progressDeadlineSeconds: 60", "progressDeadlineSeconds: 600", 1)
	})
	r.istiodClient(ist)
	cc := harness.NewIstiodCCoreClient(t, ist.XDSAddress, r.ns, fmt.Sprintf("podinfo.%s.svc.cluster.local:9999", r.ns))
	r.deploy(v2)
	c := r.waitFor("A/B routing applied, or rejected by a proxy", 3*time.Minute, func(c *v1alpha1.Canary) bool {
		cond := apimeta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionTrafficApplied)
		return c.Status.Matching && (trafficApplied(c, 0) || cond != nil && cond.Reason == "Rejected")
	})
	if cond := apimeta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionTrafficApplied); cond.Reason == "Rejected" {
		t.Logf("FIGURE istiod_ccore_ab_rejected=%q", cond.Message)
		if !strings.Contains(cond.Message, "proxyless-client."+r.ns) || !strings.Contains(cond.Message, "RouteConfiguration") ||
			!strings.Contains(c.Status.Message, "rejected") {
			t.Errorf("the rejection must name the proxy and what it rejected: %q / %q", cond.Message, c.Status.Message)
		}
		time.Sleep(3 * time.Second)
		if now := r.canary(); now.Status.Phase != v1alpha1.PhaseProgressing || now.Status.CanaryWeight != 0 {
			t.Errorf("a rejected A/B step must hold the release: %s", summary(now))
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	with, err := cc.Send(ctx, 1000, "x-canary", "insider")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE istiod_ccore_ab_header_canary_share=%.4f", float64(with.Versions[v2])/1000)
	if with.Versions[v2] != 1000 {
		t.Errorf("C-core calls with x-canary: insider must all reach the canary: %v", with.Versions)
	}
}

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url) //nolint:noctx // loopback
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// benchRounds is how many releases each path of testFirstAnswer times.
const benchRounds = 5

// testFirstAnswer times, in the same run, apply → first answer from the
// new version for a release whose provider is gatewayapi:v1 (an HTTPRoute
// that istiod turns into its proxyless clients' config) and for one served
// by serin's own xDS server: the same Canary, weight 50 at the first step.
// It prints p50 and p99 of each; it asserts only that every round ends
// with an answer from the new version.
func testFirstAnswer(t *testing.T, e *env, ist *cluster.Istiod) {
	analysis := `    interval: 1s
    threshold: 2
    stepWeight: 50
    maxWeight: 50
    webhooks:
    - {name: promotion-gate, type: confirm-promotion, url: "` + e.gates.URL + `/gate/check"}
`
	paths := []struct {
		name     string
		provider string
	}{{"istiod_httproute", "gatewayapi:v1"}, {"serin_xds", ""}}
	results := make([][]time.Duration, len(paths))
	for i, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			mk := func(ns string) string { return canaryYAML(ns, "{port: 9999}", analysis) }
			if p.provider != "" {
				mk = withProvider(p.provider, "{port: 9999}", analysis)
			}
			r := newReleaseOf(t, e, mk)
			var conn *grpc.ClientConn
			if p.provider != "" {
				conn = r.istiodClient(ist)
			} else {
				conn = r.client("bench")
			}
			for round := range benchRounds {
				version := fmt.Sprintf("6.1.%d", round+1)
				start := time.Now()
				r.kubectlApply(harness.PodinfoDeployment(r.ns, version, 3, ""))
				for {
					tl := send(conn, 1)
					if tl.Versions[version] > 0 {
						break
					}
					if time.Since(start) > 2*time.Minute {
						t.Fatalf("round %d: no answer from %s after %s", round, version, time.Since(start))
					}
				}
				results[i] = append(results[i], time.Since(start))
				r.e.gate(t, "/gate/open", r.ns)
				r.waitFor("promoted", 2*time.Minute, func(c *v1alpha1.Canary) bool {
					return c.Status.Phase == v1alpha1.PhaseSucceeded
				})
				r.e.gate(t, "/gate/close", r.ns)
			}
		})
	}
	t.Cleanup(func() {
		for i, p := range paths {
			d := slices.Clone(results[i])
			if len(d) == 0 {
				continue
			}
			slices.Sort(d)
			t.Logf("FIGURE first_canary_answer_%s_p50=%s p99=%s rounds=%d all=%v", p.name,
				d[len(d)/2].Round(time.Millisecond), d[(len(d)*99+99)/100-1].Round(time.Millisecond), len(d), d)
		}
	})
}

// testGatewayRefs: Flagger's Gateway API guide shape: the Canary names a
// Gateway (service.gatewayRefs) and a public host; serin's HTTPRoute is
// attached to that Gateway with the host, and istiod accepts it there.
func testGatewayRefs(t *testing.T, e *env) {
	ns := e.c.Namespace(t)
	gateway := fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public, namespace: %s}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP, hostname: "*.example.com"}]
`, ns)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.c.Kubectl(ctx, gateway, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	r := newReleaseIn(t, e, ns, withProvider("gatewayapi:v1", `{port: 9999, hosts: [app.example.com], gatewayRefs: [{name: public, sectionName: http}]}`, `    interval: 1s
    threshold: 2
    stepWeights: [30]
`+e.gateHooks()))
	r.deploy(v2)
	// Nothing connected to istiod routes through the Gateway here: the
	// condition says NoProxies once istiod accepted the route.
	applied := func(w int32) func(c *v1alpha1.Canary) bool {
		return func(c *v1alpha1.Canary) bool {
			cond := apimeta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionTrafficApplied)
			return c.Status.Phase == v1alpha1.PhaseProgressing && c.Status.CanaryWeight == w && cond != nil && cond.Status == "True"
		}
	}
	r.waitFor("weight 0 applied", time.Minute, applied(0))
	e.gate(t, "/gate/open", ns)
	r.waitFor("weight 30", time.Minute, func(c *v1alpha1.Canary) bool { return c.Status.CanaryWeight == 30 })
	e.gate(t, "/gate/close", ns)
	r.waitFor("weight 30 applied", time.Minute, applied(30))
	var rt gwv1.HTTPRoute
	if err := e.kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "podinfo"}, &rt); err != nil {
		t.Fatal(err)
	}
	if len(rt.Spec.ParentRefs) != 1 || rt.Spec.ParentRefs[0].Name != "public" || !slices.Equal(rt.Spec.Hostnames, []gwv1.Hostname{"app.example.com"}) {
		t.Errorf("parents %+v, hostnames %v", rt.Spec.ParentRefs, rt.Spec.Hostnames)
	}
	accepted := false
	for _, p := range rt.Status.Parents {
		a := apimeta.FindStatusCondition(p.Conditions, "Accepted")
		accepted = accepted || p.ParentRef.Name == "public" && a != nil && a.Status == "True" && a.ObservedGeneration == rt.Generation
	}
	if !accepted {
		t.Errorf("the Gateway did not accept the route: %+v", rt.Status.Parents)
	}
}
