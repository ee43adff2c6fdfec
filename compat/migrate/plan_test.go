package migrate

import (
	"maps"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/api/flaggerv1beta1"
	"github.com/serin-dev/serin/api/v1alpha1"
)

const canaryUID = "canary-uid"

func owner() []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: "flagger.app/v1beta1", Kind: "Canary", Name: "podinfo", UID: canaryUID, Controller: ptr.To(true)}}
}

func deployment(name string, replicas int32, app, version string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "test", Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app, "team": "a"}},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "app", Image: "podinfo:" + version,
						EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "podinfo-config"}}}}}},
				},
			},
		},
	}
}

// flaggerState is what Flagger leaves after a successful release: the
// target at 0, the primary serving 3 pods, the apex Service on the
// primary, Flagger's Services, HPA and a route, all owned by the Canary.
func flaggerState() *State {
	target := deployment("podinfo", 0, "podinfo", "6.0.1")
	primary := deployment("podinfo-primary", 3, "podinfo-primary", "6.0.1")
	primary.OwnerReferences = owner()
	primary.Spec.Template.Annotations = map[string]string{flaggerIDAnnotation: "0a1b"}
	primary.Spec.Template.Spec.Containers[0].EnvFrom[0].ConfigMapRef.Name = "podinfo-config-primary"
	svc := func(name, app string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "test", OwnerReferences: owner()},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app}}}
	}
	route := &unstructured.Unstructured{}
	route.SetKind("VirtualService")
	route.SetName("podinfo")
	route.SetOwnerReferences(owner())
	return &State{
		Flagger: &flaggerv1beta1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test", UID: canaryUID},
			Spec: flaggerv1beta1.CanarySpec{TargetRef: v1alpha1.LocalObjectReference{Name: "podinfo"}, Service: v1alpha1.CanaryService{Port: 9898},
				AutoscalerRef: &v1alpha1.AutoscalerReference{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Name: "podinfo"}},
			Status: flaggerv1beta1.CanaryStatus{Phase: v1alpha1.PhaseSucceeded}},
		Target: target, Primary: primary,
		PrimaryHPA: &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "podinfo-primary", OwnerReferences: owner()},
			Status: autoscalingv2.HorizontalPodAutoscalerStatus{DesiredReplicas: 4}},
		Apex:     svc("podinfo", "podinfo-primary"),
		Services: []*corev1.Service{svc("podinfo-primary", "podinfo-primary"), svc("podinfo-canary", "podinfo")},
		Routes:   []*unstructured.Unstructured{route},
	}
}

func kinds(steps []Step) []StepKind {
	var out []StepKind
	for _, s := range steps {
		out = append(out, s.Kind)
	}
	return out
}

// TestPlanFromFlaggerState: the full takeover, in order; the Deployment
// comes up on the target's own template (the primary's, mapped back),
// with the HPA's replicas.
func TestPlanFromFlaggerState(t *testing.T) {
	st := flaggerState()
	steps, err := Plan(st)
	if err != nil {
		t.Fatal(err)
	}
	want := []StepKind{StepScaleUp, StepWaitReady, StepSwitchService, StepDeleteRoute, StepDeleteHPA, StepDeletePrimary,
		StepDeleteService, StepDeleteService, StepCreateCanary, StepWaitCanary, StepDeleteFlagger}
	if got := kinds(steps); !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v", got, want)
	}
	up := steps[0]
	if up.Replicas != 4 || v1alpha1.TemplateHash(up.Template) != v1alpha1.TemplateHash(&st.Target.Spec.Template) {
		t.Fatalf("scale up to %d on %+v", up.Replicas, up.Template)
	}
	if sel := steps[2].Selector; !maps.Equal(sel, map[string]string{"app": "podinfo"}) {
		t.Fatalf("selector %v", sel)
	}
	if c := steps[8].Canary; c.Name != "podinfo" || c.Namespace != "test" || c.Spec.Service.Port != 9898 {
		t.Fatalf("canary %+v", c)
	}
}

// TestPlanResumes: after a crash each step is planned from what is
// there, so a re-run continues where the last one stopped.
func TestPlanResumes(t *testing.T) {
	st := flaggerState()
	st.Target.Spec.Replicas = ptr.To[int32](4)
	st.Target.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 4, UpdatedReplicas: 4, ReadyReplicas: 4, AvailableReplicas: 4}
	steps, _ := Plan(st)
	if steps[0].Kind != StepSwitchService {
		t.Fatalf("ready target: first step %v", kinds(steps))
	}
	st.Apex.Spec.Selector = map[string]string{"app": "podinfo"}
	st.Apex.OwnerReferences = nil
	st.Routes, st.PrimaryHPA, st.Primary, st.Services = nil, nil, nil, nil
	steps, _ = Plan(st)
	if got := kinds(steps); !slices.Equal(got, []StepKind{StepCreateCanary, StepWaitCanary, StepDeleteFlagger}) {
		t.Fatalf("after the clean-up: %v", got)
	}
	st.Serin = &v1alpha1.Canary{Status: v1alpha1.CanaryStatus{Phase: v1alpha1.PhaseInitialized}}
	steps, _ = Plan(st)
	if got := kinds(steps); !slices.Equal(got, []StepKind{StepDeleteFlagger}) {
		t.Fatalf("serin initialized: %v", got)
	}
	st.Flagger = nil
	if steps, err := Plan(st); err != nil || len(steps) != 0 {
		t.Fatalf("done: %v %v", steps, err)
	}
}

// TestPlanLeavesOthersObjects: what the flagger.app Canary does not own
// stays; an apex Service the pods cannot be selected by is an error.
func TestPlanLeavesOthersObjects(t *testing.T) {
	st := flaggerState()
	st.Primary.OwnerReferences, st.PrimaryHPA.OwnerReferences = nil, nil
	steps, _ := Plan(st)
	for _, s := range steps {
		if s.Kind == StepDeletePrimary || s.Kind == StepDeleteHPA {
			t.Fatalf("deletes %s, which the Canary does not own", s.Object.GetName())
		}
	}
	st.Apex.Spec.Selector = map[string]string{"name": "podinfo-primary"}
	if _, err := Plan(st); err == nil {
		t.Fatal("no error for a selector key the pods lack")
	}
}

// TestMapTemplate: labels renamed back, flagger-id dropped, copied
// ConfigMaps referred to by their own names; a new version stays new.
func TestMapTemplate(t *testing.T) {
	st := flaggerState()
	st.Primary.Spec.Template.Spec.Containers[0].Image = "podinfo:6.0.0"
	st.Primary.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{
		Secret: &corev1.SecretVolumeSource{SecretName: "other-primary"}}}}
	got, err := MapTemplate(st.Primary, st.Target)
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["app"] != "podinfo" || got.Labels["team"] != "a" || got.Annotations[flaggerIDAnnotation] != "" ||
		got.Spec.Containers[0].Image != "podinfo:6.0.0" || got.Spec.Containers[0].EnvFrom[0].ConfigMapRef.Name != "podinfo-config" ||
		got.Spec.Volumes[0].Secret.SecretName != "other-primary" {
		t.Fatalf("mapped template %+v", got)
	}
}
