package rollout

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Who owns what: Canaries made from a Deployment's annotations, Canaries
// applied by hand, opting Deployments in and out, and the effective spec.

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
	spec := v1alpha1.AnnotatedSpec(d)
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

// owned is what one reconcile knows of a Canary that serin steps: the
// Deployment it releases and the effective spec resolved for it.
type owned struct {
	// target is the Deployment (nil when it does not exist).
	target *appsv1.Deployment
	// spec is the effective spec; conflicts the fields that the
	// Deployment's annotations and the Canary both set.
	spec      v1alpha1.CanarySpec
	conflicts []v1alpha1.Conflict
	// deleting is true when the Canary is being deleted.
	deleting bool
}

// sync settles who owns the Canary and its Deployment before a step: a
// Canary applied over the one serin made is handed over, the Canary of a
// Deployment that opted out is deleted, a live Canary gets the finalizer
// and opts its Deployment in, and the spec of a Canary serin made follows
// the Deployment's annotations. It parses those annotations once and
// resolves the effective spec from them. A non-nil stop ends the
// reconcile there with that result.
func (r *Reconciler) sync(ctx context.Context, c *v1alpha1.Canary) (own owned, stop *ctrl.Result, err error) {
	fromAnnotations := c.Annotations[v1alpha1.AnnotationSource] == v1alpha1.SourceAnnotations
	deleting := !c.DeletionTimestamp.IsZero()
	if fromAnnotations && !deleting && editedByOthers(c) {
		return owned{}, &ctrl.Result{RequeueAfter: 100 * time.Millisecond}, r.handOver(ctx, c)
	}
	target, err := r.deployment(ctx, c.Namespace, targetName(c))
	if err != nil {
		return owned{}, nil, err
	}
	switch {
	case !deleting && fromAnnotations && (target == nil || !v1alpha1.Managed(target.Annotations)):
		// Opt-out: the annotation is gone. Deleting the Canary gives the
		// Deployment back through the finalizer.
		logr.FromContextOrDiscard(ctx).Info("deployment opted out; deleting its canary")
		return owned{}, &ctrl.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, c))
	case deleting && !controllerutil.ContainsFinalizer(c, Finalizer):
		return owned{}, &ctrl.Result{}, nil
	case !deleting:
		if err := r.claim(ctx, c, target, fromAnnotations); err != nil {
			return owned{}, nil, err
		}
	}
	// After claim: opting the Deployment in changes its annotations.
	annotated := v1alpha1.AnnotatedSpec(target)
	own = owned{target: target, deleting: deleting}
	own.spec, own.conflicts = v1alpha1.ResolveSpecFrom(c, target, annotated)
	if fromAnnotations && !deleting {
		if changed, err := r.syncAnnotationSpec(ctx, c, annotated); err != nil || changed {
			return owned{}, &ctrl.Result{}, err
		}
	}
	return own, nil, nil
}

// handOver gives a Canary serin made from annotations to whoever applied
// their own Canary over it: from now on its spec is theirs.
func (r *Reconciler) handOver(ctx context.Context, c *v1alpha1.Canary) error {
	delete(c.Annotations, v1alpha1.AnnotationSource)
	if err := r.Client.Update(ctx, c, fieldOwner); err != nil {
		return err
	}
	r.event(ctx, c, nil, Event{Reason: "Synced", Action: "Adopt", Message: fmt.Sprintf("Canary %s.%s was applied by hand; its spec now wins over the Deployment's annotations", c.Name, c.Namespace)})
	return nil
}

// claim puts the finalizer on a live Canary and, for a Canary applied by
// hand, opts its Deployment in.
func (r *Reconciler) claim(ctx context.Context, c *v1alpha1.Canary, target *appsv1.Deployment, fromAnnotations bool) error {
	if !controllerutil.ContainsFinalizer(c, Finalizer) {
		controllerutil.AddFinalizer(c, Finalizer)
		if err := r.Client.Update(ctx, c, fieldOwner); err != nil {
			return err
		}
	}
	if target != nil && !fromAnnotations && !v1alpha1.Managed(target.Annotations) {
		return r.optIn(ctx, c, target)
	}
	return nil
}

// syncAnnotationSpec keeps the spec of a Canary serin made equal to what
// the Deployment's annotations say (annotated, their parsed spec), and
// reports whether it had to change it.
func (r *Reconciler) syncAnnotationSpec(ctx context.Context, c *v1alpha1.Canary, annotated *v1alpha1.CanarySpec) (bool, error) {
	if equality.Semantic.DeepEqual(&c.Spec, annotated) {
		return false, nil
	}
	c.Spec = *annotated.DeepCopy()
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
