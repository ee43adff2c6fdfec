package traffic

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// rpcsPerWeight is how many calls measure each weight.
const rpcsPerWeight = 5000

// weightWalk is a release walked through its step weights, each held with
// the confirm-traffic-increase gate and measured by one xDS client.
type weightWalk struct {
	// name prefixes the FIGUREs and names the client's node.
	name  string
	steps []int32
	// client makes the measuring client.
	client func(r *release, node string) sender
}

// testWeights walks a release through weights 0, 5, 10, 25, 50 and 100
// and measures the canary's share of real calls made through grpc-go's xDS
// client.
func testWeights(t *testing.T, e *env) {
	walkWeights(t, e, weightWalk{name: "weights", steps: []int32{5, 10, 25, 50, 100}, client: grpcGo})
}

// testCCoreWeights walks a release through weights 0, 10, 50 and 100
// measured through gRPC C-core's xDS client (Debian's python3-grpcio), an
// implementation independent of grpc-go, with one long-lived channel.
func testCCoreWeights(t *testing.T, e *env) {
	walkWeights(t, e, weightWalk{name: "ccore_weights", steps: []int32{10, 50, 100}, client: ccore})
}

func walkWeights(t *testing.T, e *env, ww weightWalk) {
	steps := make([]string, len(ww.steps))
	for i, w := range ww.steps {
		steps[i] = fmt.Sprint(w)
	}
	r := newRelease(t, e, grpcService, `    interval: 1s
    threshold: 2
    stepWeights: [`+strings.Join(steps, ", ")+`]
`+e.gateHooks())
	send := ww.client(r, ww.name)
	if tl := send(300); tl.Versions[v1] != 300 {
		t.Fatalf("before the release every call must reach %s: %v", v1, tl)
	}

	r.deploy(v2)
	// Weight 0: the canary copy is up and serving, the first step held.
	r.waitHeldAt(0)
	r.waitCanaryServing(1)
	measure := func(w int32) {
		// An ACK means the client accepted the config; it installs the new
		// picker a moment later.
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		tl := send(rpcsPerWeight)
		t.Logf("weight %d: %d calls in %s: %v", w, tl.Total, time.Since(start).Round(time.Millisecond), tl)
		checkShare(t, ww.name, int(w), tl)
		if c := r.canary(); c.Status.CanaryWeight != w {
			t.Fatalf("the weight moved to %d while weight %d was measured", c.Status.CanaryWeight, w)
		}
	}
	measure(0)
	for _, w := range ww.steps {
		r.step(w)
		measure(w)
	}

	// Promotion: the new version becomes stable and takes everything.
	r.e.gate(t, "/gate/open", r.ns)
	r.waitFor("phase Succeeded", 2*time.Minute, func(c *v1alpha1.Canary) bool { return c.Status.Phase == v1alpha1.PhaseSucceeded })
	time.Sleep(200 * time.Millisecond)
	if tl := send(1000); tl.Versions[v2] != 1000 {
		t.Errorf("after promotion every call must reach %s: %v", v2, tl)
	}
}
