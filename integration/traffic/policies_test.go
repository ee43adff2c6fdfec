package traffic

import (
	"fmt"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Flagger's routing and cluster fields, end to end: written in the
// Canary's spec, accepted by the API server and serin's webhook, served
// over xDS and acted on by grpc-go's own xDS client.

// policyService is a gRPC service with Flagger's (Istio's) trafficPolicy
// and corsPolicy: a consistent hash on a header, outlier detection and a
// connection pool, which grpc-go receives on its clusters, and a CORS
// policy its routes carry as an optional filter config.
const policyService = `{port: 9999, appProtocol: grpc,
    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}},
      outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50},
      connectionPool: {http: {http2MaxRequests: 10000}}},
    corsPolicy: {allowOrigins: [{exact: "https://app.example.com"}], allowMethods: [POST], maxAge: 24h}}`

// testConsistentHash holds a weighted release at 50 with a consistent hash
// on x-user: every call of one user reaches the same version, and the
// users spread over both versions (the split between the tracks stays).
func testConsistentHash(t *testing.T, e *env) {
	r := newRelease(t, e, policyService, `    interval: 1s
    threshold: 2
    stepWeights: [50]
`+e.gateHooks())
	conn := r.client("hash")
	r.deploy(v2)
	r.waitHeldAt(0)
	r.waitCanaryServing(1)
	r.step(50)
	time.Sleep(pickerDelay)

	users := map[string]int{}
	for i := range 200 {
		tl := send(conn, 5, "x-user", fmt.Sprintf("user-%d", i))
		if tl.Versions[v1] != 5 && tl.Versions[v2] != 5 {
			t.Fatalf("user-%d's calls went to both versions: %v", i, tl)
		}
		if tl.Versions[v1] == 5 {
			users[v1]++
		} else {
			users[v2]++
		}
	}
	t.Logf("FIGURE consistent_hash_canary_user_share=%.4f users=200", float64(users[v2])/200)
	if users[v2] < 40 || users[v1] < 40 {
		t.Errorf("at weight 50 the users must spread over both versions: %v", users)
	}
	if c := r.canary(); c.Status.CanaryWeight != 50 {
		t.Fatalf("the release moved while it was measured: %s", summary(c))
	}
}

// testABConditions runs an A/B release whose match uses withoutHeaders:
// calls with the header go to the canary unless they also carry the
// opt-out header.
func testABConditions(t *testing.T, e *env) {
	r := newRelease(t, e, grpcService, `    interval: 1s
    threshold: 2
    iterations: 1
    match:
    - headers:
        x-canary: {exact: insider}
      withoutHeaders:
        x-opt-out: {present: true}
`+e.gateHooks())
	conn := r.client("abcond")
	r.deploy(v2)
	r.waitFor("A/B routing applied and held", time.Minute, func(c *v1alpha1.Canary) bool {
		return c.Status.Matching && c.Status.CanaryWeight == 0 && c.Status.Phase == v1alpha1.PhaseWaitingPromotion && trafficApplied(c, 0)
	})
	r.waitCanaryServing(1)
	time.Sleep(pickerDelay)

	with := send(conn, 500, "x-canary", "insider")
	optOut := send(conn, 500, "x-canary", "insider", "x-opt-out", "1")
	if with.Versions[v2] != with.Total {
		t.Errorf("calls with x-canary: insider must all reach the canary: %v", with)
	}
	if optOut.Versions[v1] != optOut.Total {
		t.Errorf("calls that also carry x-opt-out must all stay on stable: %v", optOut)
	}
}
