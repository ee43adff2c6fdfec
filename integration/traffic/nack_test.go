package traffic

import (
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
)

const clusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

// testNACK makes serin publish clusters grpc-go rejects mid-release: Istio
// mutual TLS names SDS secrets, which grpc-go refuses. serin must count the
// NACK, say so on the Canary, halt the release without rolling it back,
// keep serving the last configuration the client accepted, and not resend
// in a loop; fixing the spec lets the release go on.
func testNACK(t *testing.T, e *env) {
	r := newRelease(t, e, grpcService, `    interval: 1s
    threshold: 2
    stepWeights: [10, 20, 30]
`+e.gateHooks())
	conn := r.client("nack")
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
	nacks0 := metric("serin_xds_nack_total", "type_url", clusterType)
	r.kubectl("patch", "canary", "podinfo", "--type=merge", "-p", `{"spec":{"service":{"trafficPolicy":{"tls":{"mode":"ISTIO_MUTUAL"}}}}}`)
	deadline := time.Now().Add(20 * time.Second)
	for metric("serin_xds_nack_total", "type_url", clusterType) == nacks0 {
		if time.Now().After(deadline) {
			t.Fatalf("no NACK of the clusters counted; serin log:\n%s", cluster.Tail(e.s.LogPath(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	nackedAt := time.Now()

	// Let the release try to move on: the gate stays open from here.
	e.gate(t, "/gate/open", r.ns)
	c := r.waitFor("the release halted on the rejection", 20*time.Second, func(c *v1alpha1.Canary) bool {
		cond := apimeta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionTrafficApplied)
		return cond != nil && cond.Status == "False" && cond.Reason == "Rejected"
	})
	if c.Status.CanaryWeight != 10 {
		t.Errorf("the weight moved to %d after the rejection", c.Status.CanaryWeight)
	}
	t.Logf("FIGURE nack_to_halt_ms=%d", time.Since(nackedAt).Milliseconds())

	// Held: for several intervals the weight stays, nothing is rolled
	// back, serin does not resend, and calls keep flowing on the last
	// accepted configuration.
	sends0 := metric("serin_xds_sends_total", "type_url", clusterType)
	nacks1 := metric("serin_xds_nack_total", "type_url", clusterType)
	tl := send(conn, 2000)
	time.Sleep(3 * time.Second)
	sends1 := metric("serin_xds_sends_total", "type_url", clusterType)
	nacks2 := metric("serin_xds_nack_total", "type_url", clusterType)
	t.Logf("FIGURE nack_total=%g cluster_sends_while_halted=%g nacks_while_halted=%g", nacks2-nacks0, sends1-sends0, nacks2-nacks1)
	checkShare(t, "nack_halted", 10, tl)
	if sends1-sends0 > 2 {
		t.Errorf("serin sent clusters %g times in 3 s while halted: a resend loop", sends1-sends0)
	}
	if nacks2-nacks1 > 0 {
		t.Errorf("%g more NACKs while halted: the rejected clusters went round again", nacks2-nacks1)
	}
	c = r.canary()
	if c.Status.CanaryWeight != 10 || c.Status.Phase != v1alpha1.PhaseProgressing || len(c.Status.FailedRevisions) > 0 {
		t.Errorf("the release must stay halted at weight 10, not roll back: %s", summary(c))
	}
	var notes []string
	for deadline := time.Now().Add(10 * time.Second); len(notes) == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		notes = r.warnings("TrafficRejected") // events are written asynchronously
	}
	t.Logf("rejection events: %q", notes)
	if len(notes) == 0 || !strings.Contains(strings.Join(notes, "\n"), "rejected") {
		t.Errorf("no Warning event saying the configuration was rejected: %q\n%s", notes,
			r.kubectl("get", "events.events.k8s.io", "-o", "custom-columns=TYPE:.type,REASON:.reason,KIND:.regarding.kind,NOTE:.note"))
	}

	// Fixing the spec lets the release go on.
	r.kubectl("patch", "canary", "podinfo", "--type=merge", "-p", `{"spec":{"service":{"trafficPolicy":null}}}`)
	r.waitFor("the release moving on after the fix", 30*time.Second, func(c *v1alpha1.Canary) bool { return c.Status.CanaryWeight > 10 })
	e.gate(t, "/gate/close", r.ns)
}
