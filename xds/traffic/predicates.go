package traffic

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// Updates that change nothing a release is built from wake no release.

// deploymentSpecChanged passes on a Deployment update when its spec
// (generation), labels, annotations or deletion changed: the builder reads
// a target's selector and annotations, never its status, which the
// controller manager rewrites many times per rollout.
var deploymentSpecChanged = predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{},
	predicate.AnnotationChangedPredicate{}, deletionStarted)

// deletionStarted passes on an update that set or cleared the deletion
// timestamp.
var deletionStarted = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return !e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp())
}}

// podChanged passes on a pod update when the pod as cached (build.TrimPod:
// only what the builder reads) changed apart from its resourceVersion.
var podChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	old, ok1 := e.ObjectOld.(*corev1.Pod)
	cur, ok2 := e.ObjectNew.(*corev1.Pod)
	if !ok1 || !ok2 {
		return true
	}
	a, b := *old, *cur
	a.ResourceVersion, b.ResourceVersion = "", ""
	a.ManagedFields, b.ManagedFields = nil, nil
	return !equality.Semantic.DeepEqual(a, b)
}}
