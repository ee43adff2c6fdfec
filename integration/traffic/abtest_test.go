package traffic

import (
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// testABHeader runs an A/B release (analysis.match with iterations): calls
// carrying the header go to the canary, every other call to stable.
// grpc-go's xDS client measures it.
func testABHeader(t *testing.T, e *env) { abHeader(t, e, "", grpcGo) }

// testCCoreABHeader is testABHeader measured through gRPC C-core's xDS
// client.
func testCCoreABHeader(t *testing.T, e *env) { abHeader(t, e, "ccore_", ccore) }

// abHeader runs the A/B release; prefix starts the FIGUREs' names.
func abHeader(t *testing.T, e *env, prefix string, client func(r *release, node string) sender) {
	r := newRelease(t, e, grpcService, `    interval: 1s
    threshold: 2
    iterations: 1
    match:
    - headers:
        x-canary: {exact: insider}
`+e.gateHooks())
	send := client(r, prefix+"ab")
	r.deploy(v2)
	// One iteration, then the promotion gate holds the A/B routing.
	r.waitFor("A/B routing applied and held", time.Minute, func(c *v1alpha1.Canary) bool {
		return c.Status.Matching && c.Status.CanaryWeight == 0 && c.Status.Phase == v1alpha1.PhaseWaitingPromotion && trafficApplied(c, 0)
	})
	r.waitCanaryServing(1)
	time.Sleep(200 * time.Millisecond)

	with := send(1000, "x-canary", "insider")
	without := send(2000)
	other := send(500, "x-canary", "outsider")
	t.Logf("FIGURE %sab_header_canary_share=%.4f rpcs=%d", prefix, float64(with.Versions[v2])/float64(with.Total), with.Total)
	t.Logf("FIGURE %sab_no_header_canary_share=%.4f rpcs=%d", prefix, float64(without.Versions[v2])/float64(without.Total), without.Total)
	t.Logf("FIGURE %sab_other_header_value_canary_share=%.4f rpcs=%d", prefix, float64(other.Versions[v2])/float64(other.Total), other.Total)
	if with.Versions[v2] != with.Total {
		t.Errorf("calls with x-canary: insider must all reach the canary: %v", with)
	}
	if without.Versions[v1] != without.Total {
		t.Errorf("calls without the header must all stay on stable: %v", without)
	}
	if other.Versions[v1] != other.Total {
		t.Errorf("calls with another header value must all stay on stable: %v", other)
	}
	if c := r.canary(); !c.Status.Matching || c.Status.Phase != v1alpha1.PhaseWaitingPromotion {
		t.Fatalf("the release moved while it was measured: %s", summary(c))
	}
}
