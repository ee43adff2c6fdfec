package podsim

import (
	"context"
	"time"
)

// Response headers (HTTP) and metadata keys (gRPC headers and trailers) naming the
// pod that answered.
const (
	HeaderPod       = "X-Pod"
	HeaderNamespace = "X-Namespace"
	HeaderVersion   = "X-Version"
	HeaderWorkload  = "X-Workload"
)

// app is the state shared by a pod's HTTP and gRPC servers.
type app struct {
	plan    Plan
	metrics *podMetrics
	// draw returns a uniform float in [0, 1); it must be safe for concurrent use.
	draw func() float64
}

func newApp(plan Plan, draw func() float64) *app {
	return &app{plan: plan, metrics: newPodMetrics(plan.Identity), draw: draw}
}

// outcome decides the fate of one app request.
func (a *app) outcome() Outcome {
	return a.plan.Behavior.Decide(a.draw(), a.draw())
}

// identity is the header set naming this pod, in a fixed order.
func (a *app) identity() [][2]string {
	id := a.plan.Identity
	return [][2]string{
		{HeaderPod, id.Pod},
		{HeaderNamespace, id.Namespace},
		{HeaderVersion, a.plan.Behavior.Version},
		{HeaderWorkload, id.Workload},
	}
}

// sleep waits for d or until ctx ends, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
