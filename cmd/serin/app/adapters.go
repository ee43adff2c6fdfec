package app

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/analysis/alerts"
	"github.com/serin-dev/serin/analysis/hooks"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/compat"
	"github.com/serin-dev/serin/rollout"
	"github.com/serin-dev/serin/xds/model"
)

// The adapters below connect the release engine's small interfaces to the
// packages that implement them; each side stays unaware of the other.

// analyzer answers the engine's verdict questions with analysis.
func analyzer(an *analysis.Analyzer) rollout.Analyzer {
	return rollout.AnalyzerFunc(func(ctx context.Context, req rollout.AnalysisRequest) (rollout.Verdict, error) {
		rel := model.Release{Namespace: req.Canary.Namespace, Service: req.Spec.Service.Name, Port: uint32(req.Spec.Service.Port)}
		res, err := an.Check(ctx, analysis.Input{
			Canary: req.Canary, Spec: req.Spec,
			StableWorkload: req.Spec.TargetRef.Name, CanaryWorkload: v1alpha1.CopyName(req.Spec.TargetRef.Name),
			Clusters:    rel.Clusters(),
			WindowStart: req.StepStart, ReleaseStart: req.AnalysisStart, Now: req.Now,
			Checkpoint: req.Checkpoint,
		})
		if err != nil {
			return rollout.Verdict{}, err
		}
		d, err := decision(res.Verdict)
		if err != nil {
			return rollout.Verdict{}, err
		}
		return rollout.Verdict{
			Decision: d, FailedCheck: res.FailedCheck, Early: res.Early,
			Message: res.Message, Summary: res.Summary(),
			Checkpoint: res.Checkpoint,
		}, nil
	})
}

// hookRunner runs webhooks with the hooks package.
func hookRunner(caller *hooks.Caller) rollout.HookRunner {
	return rollout.HookRunnerFunc(func(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, typ v1alpha1.HookType) rollout.HookResult {
		o := caller.Run(ctx, hooks.ReleaseOf(c), webhooks(spec), typ)
		if typ == v1alpha1.HookRollback {
			return rollout.HookResult{Passed: o.Rollback, Message: o.Detail(true)}
		}
		return rollout.HookResult{Passed: o.Passed, Message: o.Detail(false)}
	})
}

// notifier sends release events to the Canary's alerts and event hooks.
func notifier(n *alerts.Notifier, caller *hooks.Caller) rollout.Notifier {
	return rollout.NotifierFunc(func(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, ev rollout.Event) {
		if err := n.Notify(ctx, c, alerts.ReleaseMessage(c, spec, ev.Message, ev.Warning)); err != nil {
			logr.FromContextOrDiscard(ctx).Error(err, "alert not sent", "canary", c.Name, "namespace", c.Namespace)
		}
		if list := webhooks(spec); len(hooks.Of(list, v1alpha1.HookEvent)) > 0 {
			typ := corev1.EventTypeNormal
			if ev.Warning {
				typ = corev1.EventTypeWarning
			}
			caller.Event(ctx, hooks.ReleaseOf(c), list, ev.Message, typ)
		}
	})
}

// webhooks are the webhooks of a release spec.
func webhooks(spec *v1alpha1.CanarySpec) []v1alpha1.CanaryWebhook {
	if spec.Analysis == nil {
		return nil
	}
	return spec.Analysis.Webhooks
}

// webhookGone is the uninstall signal: `serin uninstall` deletes serin's
// webhook configurations before it deletes the Canaries. It reads the API
// server directly (serin may only get its own configuration by name).
type webhookGone struct {
	reader client.Reader
	name   string
}

func (w webhookGone) Uninstalling(ctx context.Context) bool {
	var c admissionregistrationv1.MutatingWebhookConfiguration
	err := w.reader.Get(ctx, types.NamespacedName{Name: w.name}, &c)
	return apierrors.IsNotFound(err) || err == nil && c.DeletionTimestamp != nil
}

// reader reads serin's objects and Secrets for analysis and alerts. Secrets
// are read with direct GETs (serin may get, never list or watch, them).
type reader struct {
	cached client.Reader
	direct client.Reader
	// flagger, when Flagger's kinds are served, is where templates and
	// providers missing from serin.dev are looked up in flagger.app.
	flagger client.Reader
}

func (r reader) Secret(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	var s corev1.Secret
	if err := r.direct.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s); err != nil {
		return nil, fmt.Errorf("read secret %s/%s: %w", namespace, name, err)
	}
	return s.Data, nil
}

func (r reader) MetricTemplate(ctx context.Context, namespace, name string) (*v1alpha1.MetricTemplate, error) {
	var t v1alpha1.MetricTemplate
	if err := r.cached.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &t); err != nil {
		if apierrors.IsNotFound(err) && r.flagger != nil {
			return compat.MetricTemplate(ctx, r.flagger, namespace, name)
		}
		return nil, fmt.Errorf("read metric template %s/%s: %w", namespace, name, err)
	}
	return &t, nil
}

func (r reader) AlertProvider(ctx context.Context, namespace, name string) (*v1alpha1.AlertProvider, error) {
	var p v1alpha1.AlertProvider
	if err := r.cached.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &p); err != nil {
		if apierrors.IsNotFound(err) && r.flagger != nil {
			return compat.AlertProvider(ctx, r.flagger, namespace, name)
		}
		return nil, fmt.Errorf("read alert provider %s/%s: %w", namespace, name, err)
	}
	return &p, nil
}
