package traffic

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/serin-dev/serin/xds/build"
)

// TestUpdatesThatWakeARelease: a pod's update wakes its release only when
// the pod as cached changed; a Deployment's only when its spec or metadata
// did.
func TestUpdatesThatWakeARelease(t *testing.T) {
	pod := func(change func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", ResourceVersion: "1", Labels: map[string]string{"app": "a"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "v1"}}},
			Status: corev1.PodStatus{PodIP: "10.0.0.1", Conditions: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue}}}}
		if change != nil {
			p.ResourceVersion = "2"
			change(p)
		}
		trimmed, _ := build.TrimPod(p)
		return trimmed.(*corev1.Pod)
	}
	for _, tc := range []struct {
		name  string
		cur   *corev1.Pod
		wakes bool
	}{
		{"resourceVersion only", pod(func(*corev1.Pod) {}), false},
		{"a condition serin does not read", pod(func(p *corev1.Pod) { p.Status.Conditions[1].Status = corev1.ConditionFalse }), false},
		{"container status", pod(func(p *corev1.Pod) { p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app"}} }), false},
		{"not ready", pod(func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }), true},
		{"new address", pod(func(p *corev1.Pod) { p.Status.PodIP = "10.0.0.2" }), true},
		{"relabelled", pod(func(p *corev1.Pod) { p.Labels["app"] = "b" }), true},
		{"deleted", pod(func(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now }), true},
	} {
		if got := podChanged.Update(event.UpdateEvent{ObjectOld: pod(nil), ObjectNew: tc.cur}); got != tc.wakes {
			t.Errorf("pod %s: wakes %v, want %v", tc.name, got, tc.wakes)
		}
	}

	dep := func(change func(*appsv1.Deployment)) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "a", Generation: 1, Annotations: map[string]string{"x": "1"}}}
		if change != nil {
			change(d)
		}
		return d
	}
	for _, tc := range []struct {
		name  string
		cur   *appsv1.Deployment
		wakes bool
	}{
		{"status", dep(func(d *appsv1.Deployment) { d.Status.ReadyReplicas = 3 }), false},
		{"generation", dep(func(d *appsv1.Deployment) { d.Generation = 2 }), true},
		{"annotation", dep(func(d *appsv1.Deployment) { d.Annotations["x"] = "2" }), true},
		{"deleted", dep(func(d *appsv1.Deployment) { now := metav1.Now(); d.DeletionTimestamp = &now }), true},
	} {
		if got := deploymentSpecChanged.Update(event.UpdateEvent{ObjectOld: dep(nil), ObjectNew: tc.cur}); got != tc.wakes {
			t.Errorf("deployment %s: wakes %v, want %v", tc.name, got, tc.wakes)
		}
	}
}
