package rollout

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The reconciler's hands: writing status, and carrying Step's actions out
// on the world.

// writeStatus persists the status Step returned, when it changed. Actions
// run only after it succeeded, so a crash at any point resumes from status.
func (r *Reconciler) writeStatus(ctx context.Context, c *v1alpha1.Canary, st v1alpha1.CanaryStatus) error {
	if equality.Semantic.DeepEqual(c.Status, st) {
		return nil
	}
	prev, before := c.Status, c.ResourceVersion
	c.Status = st
	if err := r.Client.Status().Update(ctx, c); err != nil {
		return err
	}
	r.stale.wrote(client.ObjectKeyFromObject(c), before, c.ResourceVersion)
	logr.FromContextOrDiscard(ctx).V(1).Info("status", "phase", c.Status.Phase, "weight", c.Status.CanaryWeight, "previousPhase", prev.Phase, "previousWeight", prev.CanaryWeight)
	return nil
}

// carryOut does Step's actions in order, stopping at the first error.
func (r *Reconciler) carryOut(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, target *appsv1.Deployment, actions []Action) error {
	for _, a := range actions {
		if err := r.do(ctx, c, spec, target, a); err != nil {
			return fmt.Errorf("%T: %w", a, err)
		}
	}
	return nil
}

// do carries out one action of Step.
func (r *Reconciler) do(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, target *appsv1.Deployment, a Action) error {
	switch a := a.(type) {
	case EnsureCopy:
		return r.ensureCopy(ctx, c, spec, target, a)
	case DeleteCopy:
		return r.deleteCopy(ctx, c, spec, target)
	case SetConfig:
		return r.setConfig(ctx, c, target, a)
	case EnsureServices:
		return r.ensureServices(ctx, c, spec, target)
	case DeleteServices:
		return r.deleteServices(ctx, c, nil)
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
		for _, p := range releasePatches(target, a.Revision) {
			if err := r.patch(ctx, target, p); err != nil {
				return client.IgnoreNotFound(err)
			}
		}
	case RunHooks:
		// post-rollout hooks do not change the release; do not block it.
		go r.Hooks.RunHooks(context.WithoutCancel(ctx), c.DeepCopy(), spec.DeepCopy(), a.Type)
	case Event:
		r.event(ctx, c, spec, a)
	case Finished:
		r.Metrics.finished(c, spec, a)
	case Finalized:
		controllerutil.RemoveFinalizer(c, Finalizer)
		return client.IgnoreNotFound(r.Client.Update(ctx, c, fieldOwner))
	default:
		return fmt.Errorf("unknown action %T", a)
	}
	return nil
}

// patch merge-patches obj.
func (r *Reconciler) patch(ctx context.Context, obj client.Object, patch map[string]any) error {
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	return r.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, b))
}

// event records ev on the Canary, logs it and, when spec is known, sends
// it to alerts and event hooks without waiting.
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

// ensureCopy creates or updates the canary copy to run a.Revision with
// a.Replicas pods (or as many as its autoscaler chose), and the copy of
// the autoscaler named in autoscalerRef.
func (r *Reconciler) ensureCopy(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, target *appsv1.Deployment, a EnsureCopy) error {
	if target == nil || v1alpha1.TemplateHash(&target.Spec.Template) != a.Revision {
		// The Deployment moved on; the next step sees the new revision.
		return nil
	}
	owner := *metav1.NewControllerRef(c, v1alpha1.GroupVersion.WithKind("Canary"))
	scaler, err := r.scalerCopy(ctx, c, spec, owner)
	if err != nil {
		return err
	}
	if err := r.ensureCopyDeployment(ctx, BuildCopy(target, owner, a.Revision, a.Replicas), a.Revision, scaler != nil); err != nil {
		return err
	}
	switch s := scaler.(type) {
	case *autoscalingv2.HorizontalPodAutoscaler:
		return r.ensureHPACopy(ctx, s)
	case *unstructured.Unstructured:
		return r.ensureScaledObjectCopy(ctx, s)
	}
	return nil
}

// ensureCopyDeployment creates the canary copy want, or updates the one
// there to run revision; an autoscaler copy, when scaled, owns its
// replicas once it runs the revision.
func (r *Reconciler) ensureCopyDeployment(ctx context.Context, want *appsv1.Deployment, revision string, scaled bool) error {
	existing, err := r.deployment(ctx, want.Namespace, want.Name)
	if err != nil {
		return err
	}
	if existing == nil {
		if err := r.Client.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		return nil
	}
	replicas := want.Spec.Replicas
	if scaled && existing.Annotations[v1alpha1.AnnotationRevision] == revision {
		replicas = existing.Spec.Replicas
	}
	if existing.Annotations[v1alpha1.AnnotationRevision] == revision && *existing.Spec.Replicas == *replicas {
		return nil
	}
	existing.Annotations = want.Annotations
	existing.Labels = want.Labels
	existing.Spec.Template = want.Spec.Template
	existing.Spec.Replicas = replicas
	return r.Client.Update(ctx, existing)
}

// scalerCopy is the copy of the autoscaler named in autoscalerRef, an HPA
// or a KEDA ScaledObject, built to scale the canary copy (nil when there
// is none).
func (r *Reconciler) scalerCopy(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, owner metav1.OwnerReference) (client.Object, error) {
	if spec.AutoscalerRef == nil {
		return nil, nil
	}
	if scalesWithKEDA(spec) {
		so, err := r.scaledObject(ctx, c, spec)
		if err != nil || so == nil {
			return nil, err
		}
		return BuildScaledObjectCopy(so, owner)
	}
	hpa, err := r.hpa(ctx, c, spec)
	if err != nil || hpa == nil {
		return nil, err
	}
	return BuildHPACopy(hpa, owner), nil
}

// ensureHPACopy creates or updates the copy of the target's HPA that
// scales the canary copy.
func (r *Reconciler) ensureHPACopy(ctx context.Context, want *autoscalingv2.HorizontalPodAutoscaler) error {
	var got autoscalingv2.HorizontalPodAutoscaler
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), &got)
	switch {
	case apierrors.IsNotFound(err):
		return r.Client.Create(ctx, want)
	case err != nil:
		return err
	case !equality.Semantic.DeepEqual(got.Spec, want.Spec):
		got.Spec = want.Spec
		return r.Client.Update(ctx, &got)
	}
	return nil
}

// hpa is the HPA named in the spec's autoscalerRef (nil when there is none).
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

// deleteCopy deletes the canary copy and its autoscaler's copy.
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
	if scalesWithKEDA(spec) {
		return r.deleteScaledObjectCopy(ctx, c.Namespace, spec.AutoscalerRef.Name)
	}
	if spec.AutoscalerRef != nil {
		h := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: v1alpha1.CopyName(spec.AutoscalerRef.Name)}}
		if err := r.Client.Delete(ctx, h); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// releasePatches give a Deployment back: the first records its template as
// both candidate and stable and unpauses it (the hold webhook lets a
// Deployment still annotated serin.dev/canary roll out its stable
// revision), the second removes serin's annotations.
//
// A template whose config serin tracked goes back to reading its
// ConfigMaps and Secrets directly (its pods restart): the snapshots go
// with the Canary.
func releasePatches(target *appsv1.Deployment, revision string) []map[string]any {
	spec := map[string]any{"paused": false}
	if _, ok := target.Spec.Template.Annotations[v1alpha1.AnnotationConfig]; ok {
		revision = v1alpha1.TemplateHash(withoutConfig(&target.Spec.Template))
		spec["template"] = map[string]any{"metadata": map[string]any{"annotations": map[string]any{v1alpha1.AnnotationConfig: nil}}}
	}
	first := map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{
			v1alpha1.AnnotationCandidateRevision: revision, v1alpha1.AnnotationStableRevision: revision,
		}},
		"spec": spec,
	}
	ann := map[string]any{v1alpha1.AnnotationCandidateRevision: nil, v1alpha1.AnnotationStableRevision: nil}
	if target.Annotations[v1alpha1.AnnotationOptedInBy] != "" {
		ann[v1alpha1.AnnotationOptedInBy] = nil
		ann[v1alpha1.AnnotationCanary] = nil
	}
	return []map[string]any{first, {"metadata": map[string]any{"annotations": ann}}}
}
