package rollout

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// TestDeploymentChanged: a status rewrite that changes only conditions
// wakes nothing; a change of anything ObserveTarget or ObserveCopy reads,
// or of the spec and metadata, does.
func TestDeploymentChanged(t *testing.T) {
	base := func() *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Generation: 2, Annotations: map[string]string{"a": "1"}},
			Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 2, AvailableReplicas: 2,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Reason: "ReplicaSetUpdated"}}},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*appsv1.Deployment)
		wakes  bool
	}{
		{"conditions only", func(d *appsv1.Deployment) {
			d.Status.Conditions[0].LastUpdateTime = metav1.Now()
			d.Status.UnavailableReplicas = 1
		}, false},
		{"resourceVersion only", func(d *appsv1.Deployment) { d.ResourceVersion = "9" }, false},
		{"generation", func(d *appsv1.Deployment) { d.Generation = 3 }, true},
		{"annotation", func(d *appsv1.Deployment) { d.Annotations["a"] = "2" }, true},
		{"label", func(d *appsv1.Deployment) { d.Labels = map[string]string{"x": "y"} }, true},
		{"deleted", func(d *appsv1.Deployment) { now := metav1.Now(); d.DeletionTimestamp = &now }, true},
		{"owner", func(d *appsv1.Deployment) { d.OwnerReferences = []metav1.OwnerReference{{Name: "c"}} }, true},
		{"observed generation", func(d *appsv1.Deployment) { d.Status.ObservedGeneration = 3 }, true},
		{"replicas", func(d *appsv1.Deployment) { d.Status.Replicas = 4 }, true},
		{"updated", func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 2 }, true},
		{"ready", func(d *appsv1.Deployment) { d.Status.ReadyReplicas = 3 }, true},
		{"available", func(d *appsv1.Deployment) { d.Status.AvailableReplicas = 3 }, true},
	} {
		cur := base()
		tc.change(cur)
		if got := DeploymentChanged.Update(event.UpdateEvent{ObjectOld: base(), ObjectNew: cur}); got != tc.wakes {
			t.Errorf("%s: wakes %v, want %v", tc.name, got, tc.wakes)
		}
	}
}
