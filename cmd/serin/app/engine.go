package app

import (
	"context"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/analysis/alerts"
	"github.com/serin-dev/serin/analysis/hooks"
	"github.com/serin-dev/serin/analysis/prom"
	"github.com/serin-dev/serin/analysis/providers"
	"github.com/serin-dev/serin/internal/egress"
	"github.com/serin-dev/serin/rollout"
)

// setupEngine runs the release engine with analysis, hooks and alerts,
// moving traffic through t.
func setupEngine(ctx context.Context, mgr ctrl.Manager, o controllerOptions, log logr.Logger, t trafficParts) error {
	rd := reader{cached: mgr.GetClient(), direct: mgr.GetAPIReader()}
	if o.flaggerCompat {
		rd.flagger = mgr.GetClient()
	}
	eg, err := newEgressPolicies(ctx, mgr.GetConfig(), mgr.GetAPIReader(), o, log.WithName("egress"))
	if err != nil {
		return err
	}
	an := newAnalyzer(o, log, rd, t.loads, eg.prometheus)
	caller := hooks.New(hooks.Options{AllowedHosts: o.hookAllowedHosts, Egress: eg.calls, Log: log.WithName("hooks")})
	notes := &alerts.Notifier{Providers: rd, Secrets: rd, Egress: eg.calls, Log: log.WithName("alerts")}
	metrics := rollout.NewMetrics(crmetrics.Registry, Version)
	if o.flaggerMetrics {
		metrics.EnableFlagger(crmetrics.Registry, Version, meshProvider(o))
		an.Metrics.EnableFlagger(crmetrics.Registry)
	}
	engine := &rollout.Reconciler{
		Client: mgr.GetClient(), Recorder: t.recorder, Traffic: t.controller,
		Analyzer: analyzer(an), Hooks: hookRunner(caller), Notifier: notifier(notes, caller),
		Metrics: metrics, Wakeups: t.wakeups,
		Uninstall:   webhookGone{reader: mgr.GetAPIReader(), name: o.webhookConfigName},
		MinProxies:  o.minProxies,
		TrackConfig: o.configTracking, APIReader: mgr.GetAPIReader(),
	}
	return engine.SetupWithManager(ctx, mgr)
}

// meshProvider is flagger_info's mesh_provider: --mesh-provider, else istio
// when Istio's Envoys are serin's proxies, else serin.
func meshProvider(o controllerOptions) string {
	if o.meshProvider != "" {
		return o.meshProvider
	}
	if o.istioMode != "" && o.istioMode != "none" {
		return "istio"
	}
	return "serin"
}

// newAnalyzer is the analysis of the engine: Prometheus (--prometheus-address
// for templates without one), the other MetricTemplate providers,
// MetricTemplates and Secrets read with rd, and the load reports of every
// replica's xDS server; every connection under policy.
func newAnalyzer(o controllerOptions, log logr.Logger, rd reader, loads analysis.LoadReporter, policy egress.Policy) *analysis.Analyzer {
	pf := &prom.Factory{Default: prom.Config{Address: o.prometheusAddress}, Secrets: rd, Egress: policy}
	return &analysis.Analyzer{
		Prometheus:  pf,
		Providers:   &providers.Factory{Prometheus: pf, Secrets: rd, Egress: policy},
		Templates:   rd,
		LoadReports: loads,
		Log:         log.WithName("analysis"),
		Metrics:     analysis.NewMetrics(crmetrics.Registry),
	}
}
