package rollout

import (
	"context"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// TrafficStatus tells whether the data plane has applied the traffic in a
// Canary's status. The xDS layer serves that traffic on every replica,
// straight from the Canary's status; the engine only asks.
type TrafficStatus interface {
	// Applied reports whether every subscribed proxy applied the weight,
	// mirroring and matching now in c.Status, how many proxies are
	// subscribed, and a rejection message if one NACKed it.
	Applied(ctx context.Context, c *v1alpha1.Canary) (applied bool, proxies int, rejected string)
}

// AnalysisRequest asks for a verdict on the current step.
type AnalysisRequest struct {
	Canary *v1alpha1.Canary
	Spec   *v1alpha1.CanarySpec
	// StepStart is when the current weight came into force; AnalysisStart
	// when the canary began to get traffic; Now is the end of the window.
	StepStart, AnalysisStart, Now time.Time
	// Checkpoint is the release's load-report counts kept in status.
	Checkpoint *v1alpha1.LoadCheckpoint
}

// Analyzer gives verdicts.
type Analyzer interface {
	Analyze(ctx context.Context, req AnalysisRequest) (Verdict, error)
}

// HookRunner calls the webhooks of one type and combines their results.
type HookRunner interface {
	RunHooks(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, typ v1alpha1.HookType) HookResult
}

// Notifier sends a release event to alerts and event hooks.
type Notifier interface {
	Notify(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, ev Event)
}

// UninstallSignal tells whether serin is being uninstalled. Then a deleted
// Canary gives its Deployment back whatever opted it in, and no Canary is
// made from a Deployment's annotations.
type UninstallSignal interface {
	Uninstalling(ctx context.Context) bool
}

// AnalyzerFunc adapts a function to Analyzer.
type AnalyzerFunc func(context.Context, AnalysisRequest) (Verdict, error)

// Analyze calls f.
func (f AnalyzerFunc) Analyze(ctx context.Context, req AnalysisRequest) (Verdict, error) {
	return f(ctx, req)
}

// HookRunnerFunc adapts a function to HookRunner.
type HookRunnerFunc func(context.Context, *v1alpha1.Canary, *v1alpha1.CanarySpec, v1alpha1.HookType) HookResult

// RunHooks calls f.
func (f HookRunnerFunc) RunHooks(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, typ v1alpha1.HookType) HookResult {
	return f(ctx, c, spec, typ)
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(context.Context, *v1alpha1.Canary, *v1alpha1.CanarySpec, Event)

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, ev Event) {
	f(ctx, c, spec, ev)
}

var (
	_ Analyzer   = AnalyzerFunc(nil)
	_ HookRunner = HookRunnerFunc(nil)
	_ Notifier   = NotifierFunc(nil)
)
