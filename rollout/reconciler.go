package rollout

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Finalizer keeps a Canary until serin has given its Deployment back.
const Finalizer = "serin.dev/finalizer"

// targetIndex indexes Canaries by the Deployment they release.
const targetIndex = "spec.targetRef.name"

// Reconciler runs releases: level-triggered, all state in Canary.status.
// It runs on the leader only.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Traffic  TrafficStatus
	Analyzer Analyzer
	Hooks    HookRunner
	Notifier Notifier
	Metrics  *Metrics
	// Wakeups are sent by the data plane when proxies applied a release's
	// traffic, so the engine does not wait for its next poll.
	Wakeups <-chan event.GenericEvent
	// Uninstall, when set, tells whether serin is being uninstalled.
	Uninstall UninstallSignal
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// MinProxies is the default of spec.minProxies.
	MinProxies int32
	// TrackConfig makes the ConfigMaps and Secrets templates reference
	// part of their revision (config.go); APIReader reads their content.
	TrackConfig bool
	APIReader   client.Reader
	// Workers is how many Canaries are reconciled at once (default
	// DefaultWorkers); one Canary is never reconciled twice at a time.
	Workers int

	stale    staleWrites
	hashes   configHashes
	repairMu sync.Mutex
	repaired map[string]time.Time
}

// DefaultWorkers lets a slow hook, query or write of one release hold up
// only its own: with one worker, a hundred releases queued behind each
// other; with eight, a hundred releases starting together still waited
// behind each other's API writes for their first weight (copy ready →
// first weight p50 0.83 s with 8, 0.51 s with 16).
const DefaultWorkers = 16

// SetupWithManager registers the reconciler: Canaries, the Deployments
// they release, the canary copies, HPA copies and Services serin owns (a
// deleted one is made again), and data-plane wakeups.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.Canary{}, targetIndex, func(o client.Object) []string {
		c := o.(*v1alpha1.Canary)
		if c.Spec.TargetRef.Name == "" {
			return []string{c.Name}
		}
		return []string{c.Spec.TargetRef.Name}
	}); err != nil {
		return fmt.Errorf("index canaries by target: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Service{}, serviceOwnerIndex, serviceOwner); err != nil {
		return fmt.Errorf("index services by canary: %w", err)
	}
	if r.TrackConfig {
		if err := mgr.GetFieldIndexer().IndexField(ctx, &appsv1.Deployment{}, configIndex, configRefsOf); err != nil {
			return fmt.Errorf("index deployments by config: %w", err)
		}
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("canary").
		For(&v1alpha1.Canary{}).
		Owns(&appsv1.Deployment{}, builder.WithPredicates(DeploymentChanged)).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Owns(&corev1.Service{}).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.canariesOfDeployment), builder.WithPredicates(DeploymentChanged)).
		WithOptions(controller.Options{MaxConcurrentReconciles: cmp.Or(r.Workers, DefaultWorkers)})
	if r.TrackConfig {
		// Metadata only: a changed resourceVersion is all serin needs to
		// know, and it caches no ConfigMap or Secret content.
		for _, kind := range []v1alpha1.ConfigKind{v1alpha1.KindConfigMap, v1alpha1.KindSecret} {
			meta := &metav1.PartialObjectMetadata{}
			meta.SetGroupVersionKind(configGVK(kind))
			b = b.Watches(meta, handler.EnqueueRequestsFromMapFunc(r.deploymentsOfConfig(kind)), builder.OnlyMetadata)
		}
	}
	if r.Wakeups != nil {
		b = b.WatchesRawSource(source.Channel(r.Wakeups, &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(r)
}

// canariesOfDeployment maps a Deployment to the Canaries that release it,
// or to the Canary serin should create for it from its annotations.
func (r *Reconciler) canariesOfDeployment(ctx context.Context, o client.Object) []reconcile.Request {
	d := o.(*appsv1.Deployment)
	var list v1alpha1.CanaryList
	if err := r.Client.List(ctx, &list, client.InNamespace(d.Namespace), client.MatchingFields{targetIndex: d.Name}); err != nil {
		logr.FromContextOrDiscard(ctx).Error(err, "list canaries of deployment", "deployment", d.Name)
		return nil
	}
	var reqs []reconcile.Request
	for _, c := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}})
	}
	if len(reqs) == 0 && v1alpha1.Managed(d.Annotations) {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: d.Namespace, Name: d.Name}})
	}
	return reqs
}

// Reconcile runs one step of the release of req: it brings the Canary and
// its Deployment in line with who owns them (adopt.go), observes the world,
// runs Step, persists the status Step returns and only then carries out its
// actions (actions.go).
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var c v1alpha1.Canary
	if err := r.Client.Get(ctx, req.NamespacedName, &c); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		r.Metrics.forget(req.Namespace, req.Name)
		r.stale.forget(req.NamespacedName)
		return r.adopt(ctx, req.NamespacedName)
	}
	if r.stale.stale(req.NamespacedName, c.ResourceVersion) {
		return ctrl.Result{RequeueAfter: staleRetry}, nil
	}
	r.Metrics.seen(&c)
	own, stop, err := r.sync(ctx, &c)
	if err != nil {
		return ctrl.Result{}, err
	}
	if stop != nil {
		return *stop, nil
	}
	copyObj, err := r.deployment(ctx, c.Namespace, v1alpha1.CopyName(targetName(&c)))
	if err != nil {
		return ctrl.Result{}, err
	}
	in := r.input(ctx, &c, own, copyObj)
	out := r.step(ctx, &c, in)
	out.Status.ObservedGeneration = c.Generation
	if setConflictCondition(&out.Status, own.conflicts, in.Now) {
		r.event(ctx, &c, &own.spec, Event{Warning: true, Reason: "SpecConflict", Action: "Resolve", Message: conflictMessage(own.conflicts)})
	}
	setCompatibleCondition(&out.Status, v1alpha1.Ignored(&c.Spec), in.Now)
	if err := r.writeStatus(ctx, &c, out.Status); err != nil {
		// Nothing was done yet: the next attempt decides again.
		return ctrl.Result{}, err
	}
	r.Metrics.observe(&c)
	if err := r.carryOut(ctx, &c, &own.spec, own.target, out.Actions); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.tidyConfig(ctx, &c, own.target, copyObj, in.Now); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: out.RequeueAfter}, nil
}

// input gathers what Step looks at: the Canary's spec, status and
// annotations, and what the reconciler sees of the Deployment, its canary
// copy and the data plane.
func (r *Reconciler) input(ctx context.Context, c *v1alpha1.Canary, own owned, copyObj *appsv1.Deployment) Input {
	target, spec := own.target, &own.spec
	applied, proxies, rejected := r.Traffic.Applied(ctx, c)
	if spec.MinProxies == nil {
		withDefault := *spec
		withDefault.MinProxies = &r.MinProxies
		spec = &withDefault
	}
	in := Input{
		Name: c.Name, Namespace: c.Namespace, Spec: spec, Status: c.Status,
		Action: c.Annotations[v1alpha1.AnnotationAction], Paused: c.Annotations[v1alpha1.AnnotationPaused] == "true",
		Deleting: own.deleting,
		// A Deployment still opted in by its own annotation stays managed:
		// the Canary serin makes from the annotation takes over, unless
		// serin is being uninstalled or the Canary asks to revert.
		Revert: target != nil && (!v1alpha1.Managed(target.Annotations) || target.Annotations[v1alpha1.AnnotationOptedInBy] != "" ||
			own.deleting && (spec.RevertOnDeletion || r.uninstalling(ctx))),
		Now: r.Now(),
		Obs: Observations{
			Target:  ObserveTarget(target),
			Copy:    ObserveCopy(copyObj),
			Traffic: Traffic{Applied: applied, Proxies: proxies, Rejected: rejected},
			Config:  r.observeConfig(ctx, target),
		},
	}
	in.Status.ObservedGeneration = c.Generation
	return in
}

// step runs Step and answers its Needs: when Step asks for a verdict or
// for hook results, it asks the Analyzer and runs the hooks, adds the
// answers to the observations and calls Step again, a few times at most.
func (r *Reconciler) step(ctx context.Context, c *v1alpha1.Canary, in Input) Output {
	var out Output
	start := r.Now()
	defer func() {
		if in.Obs.Verdict != nil {
			r.Metrics.analysed(c, r.Now().Sub(start))
		}
	}()
	for range 4 {
		out = Step(in)
		if out.Needs == nil {
			return out
		}
		if out.Needs.Verdict {
			v, err := r.Analyzer.Analyze(ctx, AnalysisRequest{
				Canary: c, Spec: in.Spec, StepStart: timeOr(in.Status.StepStartTime, in.Now),
				AnalysisStart: timeOr(in.Status.AnalysisStartTime, in.Now), Now: in.Now,
				Checkpoint: in.Status.LoadCheckpoint,
			})
			if err != nil {
				v = Verdict{Decision: Hold, FailedCheck: true, Message: fmt.Sprintf("Halt %s.%s advancement: analysis failed: %v", c.Name, c.Namespace, err)}
			}
			in.Obs.Verdict = &v
		}
		for _, typ := range out.Needs.Hooks {
			if in.Obs.Hooks == nil {
				in.Obs.Hooks = map[v1alpha1.HookType]HookResult{}
			}
			in.Obs.Hooks[typ] = r.Hooks.RunHooks(ctx, c, in.Spec, typ)
		}
	}
	// Step asked more than it can: keep the status, look again soon.
	return Output{Status: in.Status, RequeueAfter: time.Second}
}

func timeOr(t *metav1.Time, def time.Time) time.Time {
	if t == nil {
		return def
	}
	return t.Time
}

func targetName(c *v1alpha1.Canary) string {
	if c.Spec.TargetRef.Name != "" {
		return c.Spec.TargetRef.Name
	}
	return c.Name
}

func (r *Reconciler) deployment(ctx context.Context, ns, name string) (*appsv1.Deployment, error) {
	var d appsv1.Deployment
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return &d, nil
}

func (r *Reconciler) uninstalling(ctx context.Context) bool {
	return r.Uninstall != nil && r.Uninstall.Uninstalling(ctx)
}
