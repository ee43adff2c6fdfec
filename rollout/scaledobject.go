package rollout

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// KEDA's ScaledObject, read and written as unstructured objects: serin
// copies the user's for the canary copy when autoscalerRef names one, and
// needs nothing of KEDA's types. Reads go to the API server, not to an
// informer, so a cluster without KEDA's CRD is never watched for it.

// ScaledObjectGVK is KEDA's ScaledObject.
var ScaledObjectGVK = schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: ScaledObjectKind}

// ScaledObjectKind is the kind autoscalerRef names for KEDA.
const ScaledObjectKind = "ScaledObject"

// scalesWithKEDA tells whether autoscalerRef names a KEDA ScaledObject.
func scalesWithKEDA(spec *v1alpha1.CanarySpec) bool {
	return spec.AutoscalerRef != nil && spec.AutoscalerRef.Kind == ScaledObjectKind
}

// BuildScaledObjectCopy is a copy of the target's ScaledObject that scales
// the canary copy: the same triggers, replica bounds and behaviour, its
// scaleTargetRef (and the HPA name KEDA gives it, when set) pointing at
// the copy, owned by the Canary.
func BuildScaledObjectCopy(so *unstructured.Unstructured, owner metav1.OwnerReference) (*unstructured.Unstructured, error) {
	spec, _, err := unstructured.NestedMap(so.Object, "spec")
	if err != nil {
		return nil, fmt.Errorf("scaledobject %s: %w", so.GetName(), err)
	}
	target, _, err := unstructured.NestedString(spec, "scaleTargetRef", "name")
	if err != nil {
		return nil, fmt.Errorf("scaledobject %s: %w", so.GetName(), err)
	}
	if target == "" {
		return nil, fmt.Errorf("scaledobject %s has no spec.scaleTargetRef.name", so.GetName())
	}
	if err := unstructured.SetNestedField(spec, v1alpha1.CopyName(target), "scaleTargetRef", "name"); err != nil {
		return nil, err
	}
	if hpa, ok, _ := unstructured.NestedString(spec, "advanced", "horizontalPodAutoscalerConfig", "name"); ok && hpa != "" {
		if err := unstructured.SetNestedField(spec, v1alpha1.CopyName(hpa), "advanced", "horizontalPodAutoscalerConfig", "name"); err != nil {
			return nil, err
		}
	}
	out := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	out.SetGroupVersionKind(ScaledObjectGVK)
	out.SetName(v1alpha1.CopyName(so.GetName()))
	out.SetNamespace(so.GetNamespace())
	out.SetLabels(map[string]string{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue})
	out.SetOwnerReferences([]metav1.OwnerReference{owner})
	return out, nil
}

// scaledObject is the ScaledObject named in autoscalerRef (nil when there
// is none, or when KEDA's CRD is not installed).
func (r *Reconciler) scaledObject(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec) (*unstructured.Unstructured, error) {
	so := &unstructured.Unstructured{}
	so.SetGroupVersionKind(ScaledObjectGVK)
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: spec.AutoscalerRef.Name}, so)
	switch {
	case apierrors.IsNotFound(err) || apimeta.IsNoMatchError(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("scaledobject %s: %w", spec.AutoscalerRef.Name, err)
	}
	return so, nil
}

// ensureScaledObjectCopy creates or updates the copy of the target's
// ScaledObject.
func (r *Reconciler) ensureScaledObjectCopy(ctx context.Context, want *unstructured.Unstructured) error {
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(ScaledObjectGVK)
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), got)
	switch {
	case apierrors.IsNotFound(err):
		return r.Client.Create(ctx, want, fieldOwner)
	case err != nil:
		return err
	case !equality.Semantic.DeepEqual(got.Object["spec"], want.Object["spec"]):
		got.Object["spec"] = want.Object["spec"]
		return r.Client.Update(ctx, got, fieldOwner)
	}
	return nil
}

// deleteScaledObjectCopy deletes the copy of the ScaledObject name; there
// is nothing to delete without KEDA's CRD.
func (r *Reconciler) deleteScaledObjectCopy(ctx context.Context, namespace, name string) error {
	so := &unstructured.Unstructured{}
	so.SetGroupVersionKind(ScaledObjectGVK)
	so.SetNamespace(namespace)
	so.SetName(v1alpha1.CopyName(name))
	if err := r.Client.Delete(ctx, so); client.IgnoreNotFound(err) != nil && !apimeta.IsNoMatchError(err) {
		return err
	}
	return nil
}
