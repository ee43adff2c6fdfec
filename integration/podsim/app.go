package podsim

import (
	"context"
	"sync/atomic"
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

// Response headers (HTTP) and metadata keys (gRPC headers and trailers) reporting the
// pod's configuration: HeaderConfigEnv the env variables whose value came from a
// ConfigMap or Secret (NAME=value, sorted, joined by ","), HeaderConfigFiles the
// files of its mounted configMap, secret and projected volumes as they are now
// (mountPath/path=content, sorted, joined by ","; each content trimmed and cut at
// 100 bytes). Each is left out when empty.
const (
	HeaderConfigEnv   = "X-Config-Env"
	HeaderConfigFiles = "X-Config-Files"
)

// app is the state shared by a pod's HTTP and gRPC servers.
type app struct {
	plan    Plan
	metrics *podMetrics
	// draw returns a uniform float in [0, 1); it must be safe for concurrent use.
	draw func() float64
	// envReport is fixed at start, as a container's env is; files is the current
	// files report, replaced on every volume refresh.
	envReport string
	files     atomic.Pointer[string]
}

func newApp(plan Plan, draw func() float64) *app {
	a := &app{plan: plan, metrics: newPodMetrics(plan.Identity), draw: draw, envReport: envReport(plan.ConfigEnv)}
	a.files.Store(new(string))
	return a
}

// setFiles replaces the reported volume files.
func (a *app) setFiles(files map[string]string) {
	report := filesReport(files)
	a.files.Store(&report)
}

// outcome decides the fate of one app request.
func (a *app) outcome() Outcome {
	return a.plan.Behavior.Decide(a.draw(), a.draw())
}

// identity is the header set naming this pod and reporting its configuration, in a
// fixed order.
func (a *app) identity() [][2]string {
	id := a.plan.Identity
	kvs := [][2]string{
		{HeaderPod, id.Pod},
		{HeaderNamespace, id.Namespace},
		{HeaderVersion, a.plan.Behavior.Version},
		{HeaderWorkload, id.Workload},
	}
	if a.envReport != "" {
		kvs = append(kvs, [2]string{HeaderConfigEnv, a.envReport})
	}
	if files := *a.files.Load(); files != "" {
		kvs = append(kvs, [2]string{HeaderConfigFiles, files})
	}
	return kvs
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
