package rollout

import (
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// DeploymentChanged passes on a Deployment update only when something the
// engine reads of it changed: its spec (generation), labels, annotations,
// owners or deletion, or the replica counts of its status. The controller
// manager rewrites a Deployment's status many times per rollout for its
// conditions' timestamps alone; at a hundred releases at once those
// reconciles queued in front of the ones that had work to do.
var DeploymentChanged = predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{},
	predicate.AnnotationChangedPredicate{}, predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		old, ok1 := e.ObjectOld.(*appsv1.Deployment)
		cur, ok2 := e.ObjectNew.(*appsv1.Deployment)
		if !ok1 || !ok2 {
			return true
		}
		a, b := old.Status, cur.Status
		return !equality.Semantic.DeepEqual(old.OwnerReferences, cur.OwnerReferences) ||
			!old.DeletionTimestamp.Equal(cur.DeletionTimestamp) ||
			a.ObservedGeneration != b.ObservedGeneration || a.Replicas != b.Replicas ||
			a.UpdatedReplicas != b.UpdatedReplicas || a.ReadyReplicas != b.ReadyReplicas ||
			a.AvailableReplicas != b.AvailableReplicas
	}})
