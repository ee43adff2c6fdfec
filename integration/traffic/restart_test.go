package traffic

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// testRestart kills serin mid-release with a client connected and calls
// flowing, at weight 0 (canary pods up), 50 and 100, and starts it again.
// The client must never see a default or empty configuration: no call
// fails and none reaches a track the weight in status excludes; once
// reconnected it gets exactly the weight in status.
func testRestart(t *testing.T, e *env) {
	r := newRelease(t, e, grpcService, `    interval: 1s
    threshold: 2
    stepWeights: [50, 100]
`+e.gateHooks())
	conn := r.client("restart")
	r.deploy(v2)
	r.waitHeldAt(0)
	// Proportional canary replicas: enough for the next weight (3 × 50 %).
	r.waitCanaryServing(2)

	r.restartUnderLoad(conn, 0)
	r.step(50)
	r.waitCanaryServing(3)
	r.restartUnderLoad(conn, 50)
	r.step(100)
	r.waitCanaryServing(3)
	r.restartUnderLoad(conn, 100)
}

// restartUnderLoad kills and restarts serin while calls flow, then checks
// the calls made during the outage and after the client reconnected.
func (r *release) restartUnderLoad(conn *grpc.ClientConn, w int) {
	t := r.t
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	l := startLoad(conn, 4, 0)
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	r.e.s.Kill()
	time.Sleep(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.e.s.Start(ctx); err != nil {
		l.Stop()
		t.Fatal(err)
	}
	ready := time.Now()
	// The client reconnects with backoff; wait for its stream.
	var proxies float64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var err error
		if proxies, err = r.e.s.Metric("serin_xds_connected_proxies"); err == nil && proxies > 0 {
			break
		}
	}
	reconnected := time.Now()
	// The engine sees the weight applied again once the client ACKs it.
	c := r.waitFor(fmt.Sprintf("weight %d applied after the restart", w), time.Minute, func(c *v1alpha1.Canary) bool { return trafficApplied(c, int32(w)) })
	time.Sleep(time.Second)
	rpcs := l.Stop()
	if proxies == 0 {
		t.Fatalf("no proxy reconnected within 30 s of serin's restart")
	}
	if c.Status.CanaryWeight != int32(w) {
		t.Fatalf("weight %d in status after the restart, want %d", c.Status.CanaryWeight, w)
	}

	var during, after []rpc
	for _, c := range rpcs {
		switch {
		case c.start.After(killed) && c.start.Before(reconnected):
			during = append(during, c)
		case c.start.After(reconnected):
			after = append(after, c)
		}
	}
	all, out, back := count(rpcs), count(during), count(after)
	t.Logf("weight %d: restart took %s (ready after %s), client back after %s; calls: all %v; during the outage %v; after %v",
		w, reconnected.Sub(killed).Round(time.Millisecond), ready.Sub(killed).Round(time.Millisecond),
		reconnected.Sub(ready).Round(time.Millisecond), all, out, back)
	t.Logf("FIGURE restart_weight_%d_outage_ms=%d calls_during_outage=%d failed_calls=%d", w, reconnected.Sub(killed).Milliseconds(), out.Total, all.Errors)
	if all.Errors > 0 {
		t.Errorf("weight %d: %d calls failed across the restart, last: %v", w, all.Errors, all.LastErr)
	}
	if out.Total == 0 {
		t.Errorf("weight %d: no calls were made while serin was down", w)
	}
	switch w {
	case 0:
		if n := all.Versions[v2]; n > 0 {
			t.Errorf("weight 0: %d calls reached the canary across the restart", n)
		}
	case 100:
		if n := all.Versions[v1]; n > 0 {
			t.Errorf("weight 100: %d calls reached stable across the restart", n)
		}
	default:
		checkShare(t, "restart_during_outage", w, out)
	}
	checkShare(t, "restart_after_reconnect", w, send(conn, 1000))
}
