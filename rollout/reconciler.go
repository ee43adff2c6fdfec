package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
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
}

// SetupWithManager registers the reconciler: Canaries, the Deployments
// they release, the canary copies and HPA copies, and data-plane wakeups.
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
	b := ctrl.NewControllerManagedBy(mgr).
		Named("canary").
		For(&v1alpha1.Canary{}).
		Owns(&appsv1.Deployment{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.canariesOfDeployment))
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

// Reconcile runs one step of the release of req.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logr.FromContextOrDiscard(ctx)
	var c v1alpha1.Canary
	if err := r.Client.Get(ctx, req.NamespacedName, &c); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		r.Metrics.forget(req.Namespace, req.Name)
		return r.adopt(ctx, req.NamespacedName)
	}
	fromAnnotations := c.Annotations[v1alpha1.AnnotationSource] == v1alpha1.SourceAnnotations
	deleting := !c.DeletionTimestamp.IsZero()
	if fromAnnotations && !deleting && editedByOthers(&c) {
		// Someone applied their own Canary over the one serin made from
		// annotations: from now on it is theirs.
		delete(c.Annotations, v1alpha1.AnnotationSource)
		if err := r.Client.Update(ctx, &c, fieldOwner); err != nil {
			return ctrl.Result{}, err
		}
		r.event(ctx, &c, nil, Event{Reason: "Synced", Action: "Adopt", Message: fmt.Sprintf("Canary %s.%s was applied by hand; its spec now wins over the Deployment's annotations", c.Name, c.Namespace)})
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	target, err := r.deployment(ctx, c.Namespace, targetName(&c))
	if err != nil {
		return ctrl.Result{}, err
	}
	if !deleting && fromAnnotations && (target == nil || !v1alpha1.Managed(target.Annotations)) {
		// Opt-out: the annotation is gone. Deleting the Canary gives the
		// Deployment back through the finalizer.
		log.Info("deployment opted out; deleting its canary")
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, &c))
	}
	if deleting && !controllerutil.ContainsFinalizer(&c, Finalizer) {
		return ctrl.Result{}, nil
	}
	if !deleting {
		if !controllerutil.ContainsFinalizer(&c, Finalizer) {
			controllerutil.AddFinalizer(&c, Finalizer)
			if err := r.Client.Update(ctx, &c, fieldOwner); err != nil {
				return ctrl.Result{}, err
			}
		}
		if target != nil && !fromAnnotations && !v1alpha1.Managed(target.Annotations) {
			if err := r.optIn(ctx, &c, target); err != nil {
				return ctrl.Result{}, err
			}
		}
	}

	spec, conflicts := v1alpha1.ResolveSpec(&c, target)
	if fromAnnotations && !deleting {
		if changed, err := r.syncAnnotationSpec(ctx, &c, target); err != nil || changed {
			return ctrl.Result{}, err
		}
	}

	copyObj, err := r.deployment(ctx, c.Namespace, v1alpha1.CopyName(targetName(&c)))
	if err != nil {
		return ctrl.Result{}, err
	}
	applied, proxies, rejected := r.Traffic.Applied(&c)
	in := Input{
		Name: c.Name, Namespace: c.Namespace, Spec: &spec, Status: c.Status,
		Action: c.Annotations[v1alpha1.AnnotationAction], Paused: c.Annotations[v1alpha1.AnnotationPaused] == "true",
		Deleting: deleting,
		// A Deployment still opted in by its own annotation stays managed:
		// the Canary serin makes from the annotation takes over, unless
		// serin is being uninstalled or the Canary asks to revert.
		Revert: target != nil && (!v1alpha1.Managed(target.Annotations) || target.Annotations[v1alpha1.AnnotationOptedInBy] != "" ||
			deleting && (spec.RevertOnDeletion || r.uninstalling(ctx))),
		Now: r.Now(),
		Obs: Observations{
			Target:  ObserveTarget(target),
			Copy:    ObserveCopy(copyObj),
			Traffic: Traffic{Applied: applied, Proxies: proxies, Rejected: rejected},
		},
	}
	in.Status.ObservedGeneration = c.Generation
	out := r.step(ctx, &c, in)
	out.Status.ObservedGeneration = c.Generation
	if setConflictCondition(&out.Status, conflicts, in.Now) {
		r.event(ctx, &c, &spec, Event{Warning: true, Reason: "SpecConflict", Action: "Resolve", Message: conflictMessage(conflicts)})
	}

	if !equality.Semantic.DeepEqual(c.Status, out.Status) {
		prev := c.Status
		c.Status = out.Status
		if err := r.Client.Status().Update(ctx, &c); err != nil {
			// Nothing was done yet: the next attempt decides again.
			return ctrl.Result{}, err
		}
		log.V(1).Info("status", "phase", c.Status.Phase, "weight", c.Status.CanaryWeight, "previousPhase", prev.Phase, "previousWeight", prev.CanaryWeight)
	}
	r.Metrics.observe(&c)
	for _, a := range out.Actions {
		if err := r.do(ctx, &c, &spec, target, a); err != nil {
			return ctrl.Result{}, fmt.Errorf("%T: %w", a, err)
		}
	}
	return ctrl.Result{RequeueAfter: out.RequeueAfter}, nil
}

// step runs Step, answering its questions (analysis, hooks) in between.
func (r *Reconciler) step(ctx context.Context, c *v1alpha1.Canary, in Input) Output {
	var out Output
	for range 4 {
		out = Step(in)
		if out.Needs == nil {
			return out
		}
		if out.Needs.Verdict {
			v, err := r.Analyzer.Analyze(ctx, AnalysisRequest{
				Canary: c, Spec: in.Spec, StepStart: timeOr(in.Status.StepStartTime, in.Now),
				AnalysisStart: timeOr(in.Status.AnalysisStartTime, in.Now), Now: in.Now,
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

// adoptGrace lets a Canary applied together with its Deployment (one
// kubectl apply of both) arrive before serin makes one from annotations.
const adoptGrace = 3 * time.Second

// adopt creates the Canary of a Deployment managed by annotation only.
func (r *Reconciler) adopt(ctx context.Context, key types.NamespacedName) (ctrl.Result, error) {
	d, err := r.deployment(ctx, key.Namespace, key.Name)
	if err != nil || d == nil || !v1alpha1.Managed(d.Annotations) || d.Annotations[v1alpha1.AnnotationOptedInBy] != "" {
		return ctrl.Result{}, err
	}
	if age := r.Now().Sub(d.CreationTimestamp.Time); age < adoptGrace {
		return ctrl.Result{RequeueAfter: adoptGrace - age}, nil
	}
	if r.uninstalling(ctx) {
		return ctrl.Result{}, nil
	}
	var list v1alpha1.CanaryList
	if err := r.Client.List(ctx, &list, client.InNamespace(d.Namespace), client.MatchingFields{targetIndex: d.Name}); err != nil {
		return ctrl.Result{}, err
	}
	if len(list.Items) > 0 {
		return ctrl.Result{}, nil
	}
	spec, _ := v1alpha1.SpecFromAnnotations(d.Name, d.Annotations)
	c := &v1alpha1.Canary{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name, Namespace: d.Namespace,
			Labels:      map[string]string{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue},
			Annotations: map[string]string{v1alpha1.AnnotationSource: v1alpha1.SourceAnnotations},
			Finalizers:  []string{Finalizer},
		},
		Spec: *spec,
	}
	if err := r.Client.Create(ctx, c, fieldOwner); err != nil && !apierrors.IsAlreadyExists(err) {
		return ctrl.Result{}, fmt.Errorf("create canary for %s/%s: %w", d.Namespace, d.Name, err)
	}
	logr.FromContextOrDiscard(ctx).Info("created canary from deployment annotations", "deployment", d.Name)
	return ctrl.Result{}, nil
}

// fieldOwner is the field manager of serin's writes to Canaries, so a
// Canary's managed fields tell serin's edits from everyone else's.
const fieldOwner = client.FieldOwner("serin")

// editedByOthers reports whether a field manager other than serin owns
// part of the Canary's spec.
func editedByOthers(c *v1alpha1.Canary) bool {
	for _, m := range c.ManagedFields {
		if m.Manager != string(fieldOwner) && m.Subresource == "" && m.FieldsV1 != nil &&
			strings.Contains(m.FieldsV1.GetRawString(), `"f:spec"`) {
			return true
		}
	}
	return false
}

// syncAnnotationSpec keeps the spec of a Canary serin made equal to what
// the Deployment's annotations say.
func (r *Reconciler) syncAnnotationSpec(ctx context.Context, c *v1alpha1.Canary, d *appsv1.Deployment) (bool, error) {
	spec, _ := v1alpha1.SpecFromAnnotations(d.Name, d.Annotations)
	if equality.Semantic.DeepEqual(&c.Spec, spec) {
		return false, nil
	}
	c.Spec = *spec
	return true, r.Client.Update(ctx, c, fieldOwner)
}

// optIn annotates the target of an explicit Canary so the webhook holds
// its new revisions.
func (r *Reconciler) optIn(ctx context.Context, c *v1alpha1.Canary, d *appsv1.Deployment) error {
	patch := map[string]any{"metadata": map[string]any{"annotations": map[string]any{
		v1alpha1.AnnotationCanary: "enabled", v1alpha1.AnnotationOptedInBy: c.Name,
	}}}
	if err := r.patch(ctx, d, patch); err != nil {
		return fmt.Errorf("opt deployment in: %w", err)
	}
	r.event(ctx, c, nil, Event{Reason: "Synced", Action: "OptIn", Message: fmt.Sprintf("Deployment %s.%s opted in by canary %s", d.Name, d.Namespace, c.Name)})
	return nil
}

func (r *Reconciler) patch(ctx context.Context, obj client.Object, patch map[string]any) error {
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	return r.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, b))
}

// do carries out one action of Step.
func (r *Reconciler) do(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, target *appsv1.Deployment, a Action) error {
	switch a := a.(type) {
	case EnsureCopy:
		return r.ensureCopy(ctx, c, spec, target, a)
	case DeleteCopy:
		return r.deleteCopy(ctx, c, spec, target)
	case PromoteTarget:
		return r.patch(ctx, target, map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{v1alpha1.AnnotationStableRevision: a.Revision}},
			"spec":     map[string]any{"paused": false},
		})
	case UnpauseTarget:
		return r.patch(ctx, target, map[string]any{"spec": map[string]any{"paused": false}})
	case HoldTarget:
		return r.patch(ctx, target, map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{
				v1alpha1.AnnotationCandidateRevision: a.Candidate, v1alpha1.AnnotationStableRevision: a.Stable,
			}},
			"spec": map[string]any{"paused": true},
		})
	case ReleaseTarget:
		ann := map[string]any{v1alpha1.AnnotationCandidateRevision: nil, v1alpha1.AnnotationStableRevision: nil}
		if target.Annotations[v1alpha1.AnnotationOptedInBy] != "" {
			ann[v1alpha1.AnnotationOptedInBy] = nil
			ann[v1alpha1.AnnotationCanary] = nil
		}
		return client.IgnoreNotFound(r.patch(ctx, target, map[string]any{
			"metadata": map[string]any{"annotations": ann},
			"spec":     map[string]any{"paused": false},
		}))
	case RunHooks:
		// post-rollout hooks do not change the release; do not block it.
		go r.Hooks.RunHooks(context.WithoutCancel(ctx), c.DeepCopy(), spec.DeepCopy(), a.Type)
	case Event:
		r.event(ctx, c, spec, a)
	case Finished:
		r.Metrics.finished(c, a)
	case Finalized:
		controllerutil.RemoveFinalizer(c, Finalizer)
		return client.IgnoreNotFound(r.Client.Update(ctx, c, fieldOwner))
	default:
		return fmt.Errorf("unknown action %T", a)
	}
	return nil
}

func (r *Reconciler) event(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, ev Event) {
	typ := corev1.EventTypeNormal
	if ev.Warning {
		typ = corev1.EventTypeWarning
	}
	if r.Recorder != nil {
		action := ev.Action
		if action == "" {
			action = "Release"
		}
		r.Recorder.Eventf(c, nil, typ, ev.Reason, action, "%s", ev.Message)
	}
	logr.FromContextOrDiscard(ctx).Info(ev.Message, "warning", ev.Warning, "phase", c.Status.Phase, "weight", c.Status.CanaryWeight)
	if r.Notifier != nil && spec != nil {
		go r.Notifier.Notify(context.WithoutCancel(ctx), c.DeepCopy(), spec.DeepCopy(), ev)
	}
}

func (r *Reconciler) ensureCopy(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, target *appsv1.Deployment, a EnsureCopy) error {
	if target == nil || v1alpha1.TemplateHash(&target.Spec.Template) != a.Revision {
		// The Deployment moved on; the next step sees the new revision.
		return nil
	}
	owner := *metav1.NewControllerRef(c, v1alpha1.GroupVersion.WithKind("Canary"))
	want := BuildCopy(target, owner, a.Revision, a.Replicas)
	hpa, err := r.hpa(ctx, c, spec)
	if err != nil {
		return err
	}
	existing, err := r.deployment(ctx, c.Namespace, want.Name)
	if err != nil {
		return err
	}
	if existing == nil {
		if err := r.Client.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	} else {
		replicas := want.Spec.Replicas
		if hpa != nil && existing.Annotations[v1alpha1.AnnotationRevision] == a.Revision {
			// The HPA copy owns the replicas.
			replicas = existing.Spec.Replicas
		}
		if existing.Annotations[v1alpha1.AnnotationRevision] != a.Revision || *existing.Spec.Replicas != *replicas {
			existing.Annotations = want.Annotations
			existing.Labels = want.Labels
			existing.Spec.Template = want.Spec.Template
			existing.Spec.Replicas = replicas
			if err := r.Client.Update(ctx, existing); err != nil {
				return err
			}
		}
	}
	if hpa != nil {
		hpaCopy := BuildHPACopy(hpa, owner)
		var got autoscalingv2.HorizontalPodAutoscaler
		err := r.Client.Get(ctx, client.ObjectKeyFromObject(hpaCopy), &got)
		switch {
		case apierrors.IsNotFound(err):
			return r.Client.Create(ctx, hpaCopy)
		case err != nil:
			return err
		case !equality.Semantic.DeepEqual(got.Spec, hpaCopy.Spec):
			got.Spec = hpaCopy.Spec
			return r.Client.Update(ctx, &got)
		}
	}
	return nil
}

func (r *Reconciler) hpa(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	if spec.AutoscalerRef == nil {
		return nil, nil
	}
	var hpa autoscalingv2.HorizontalPodAutoscaler
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: spec.AutoscalerRef.Name}, &hpa); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return &hpa, nil
}

func (r *Reconciler) deleteCopy(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, target *appsv1.Deployment) error {
	name := targetName(c)
	if target != nil {
		name = target.Name
	}
	propagation := metav1.DeletePropagationBackground
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: v1alpha1.CopyName(name)}}
	if err := r.Client.Delete(ctx, d, &client.DeleteOptions{PropagationPolicy: &propagation}); client.IgnoreNotFound(err) != nil {
		return err
	}
	if spec.AutoscalerRef != nil {
		h := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: v1alpha1.CopyName(spec.AutoscalerRef.Name)}}
		if err := r.Client.Delete(ctx, h); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// setConflictCondition records the conflicts in status and reports whether
// they are new.
func setConflictCondition(st *v1alpha1.CanaryStatus, conflicts []v1alpha1.Conflict, now time.Time) bool {
	old := apimeta.FindStatusCondition(st.Conditions, v1alpha1.ConditionSpecConflict)
	cond := metav1.Condition{Type: v1alpha1.ConditionSpecConflict, Status: metav1.ConditionFalse, Reason: "NoConflict",
		Message: "annotations and the Canary agree", ObservedGeneration: st.ObservedGeneration, LastTransitionTime: metav1.NewTime(now)}
	if len(conflicts) > 0 {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "Conflict", conflictMessage(conflicts)
	}
	isNew := cond.Status == metav1.ConditionTrue && (old == nil || old.Message != cond.Message)
	apimeta.SetStatusCondition(&st.Conditions, cond)
	return isNew
}

func conflictMessage(conflicts []v1alpha1.Conflict) string {
	msg := "annotations and the Canary disagree:"
	for _, c := range conflicts {
		msg += " " + c.String() + ";"
	}
	return msg
}
