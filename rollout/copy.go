package rollout

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// BuildCopy is the canary copy of target running its current pod template
// (the held candidate) with replicas pods, owned by the Canary.
func BuildCopy(target *appsv1.Deployment, owner metav1.OwnerReference, revision string, replicas int32) *appsv1.Deployment {
	sel := map[string]string{}
	if target.Spec.Selector != nil {
		sel = target.Spec.Selector.MatchLabels
	}
	tmpl := target.Spec.Template.DeepCopy()
	tmpl.Labels = v1alpha1.CanaryLabels(tmpl.Labels, sel)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:      v1alpha1.CopyName(target.Name),
			Namespace: target.Namespace,
			Labels: map[string]string{
				v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue,
				v1alpha1.LabelTrack:     string(v1alpha1.TrackCanary),
			},
			Annotations:     map[string]string{v1alpha1.AnnotationRevision: revision},
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:                &replicas,
			Selector:                &metav1.LabelSelector{MatchLabels: v1alpha1.CanarySelector(sel)},
			Template:                *tmpl,
			Strategy:                target.Spec.Strategy,
			MinReadySeconds:         target.Spec.MinReadySeconds,
			RevisionHistoryLimit:    target.Spec.RevisionHistoryLimit,
			ProgressDeadlineSeconds: target.Spec.ProgressDeadlineSeconds,
		},
	}
	if target.Spec.Selector != nil {
		for _, e := range target.Spec.Selector.MatchExpressions {
			d.Spec.Selector.MatchExpressions = append(d.Spec.Selector.MatchExpressions, *e.DeepCopy())
		}
	}
	return d
}

// BuildHPACopy is a copy of the target's HPA that scales the canary copy.
func BuildHPACopy(hpa *autoscalingv2.HorizontalPodAutoscaler, owner metav1.OwnerReference) *autoscalingv2.HorizontalPodAutoscaler {
	spec := hpa.Spec.DeepCopy()
	spec.ScaleTargetRef.Name = v1alpha1.CopyName(hpa.Spec.ScaleTargetRef.Name)
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{
			Name:            v1alpha1.CopyName(hpa.Name),
			Namespace:       hpa.Namespace,
			Labels:          map[string]string{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue},
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		Spec: *spec,
	}
}

// ObserveTarget reads what Step needs from the user's Deployment.
func ObserveTarget(d *appsv1.Deployment) Target {
	if d == nil {
		return Target{}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	hash := v1alpha1.TemplateHash(&d.Spec.Template)
	return Target{
		Found:         true,
		TemplateHash:  hash,
		Config:        d.Spec.Template.Annotations[v1alpha1.AnnotationConfig],
		BaseHash:      baseHash(&d.Spec.Template, hash),
		Candidate:     d.Annotations[v1alpha1.AnnotationCandidateRevision],
		Stable:        d.Annotations[v1alpha1.AnnotationStableRevision],
		Paused:        d.Spec.Paused,
		Replicas:      want,
		ReadyReplicas: st.ReadyReplicas,
		Available:     want == 0 || st.AvailableReplicas > 0,
		RolledOut: st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want &&
			st.Replicas == want && st.AvailableReplicas == want,
	}
}

// ObserveCopy reads what Step needs from the canary copy.
func ObserveCopy(d *appsv1.Deployment) Copy {
	if d == nil {
		return Copy{}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	return Copy{
		Exists:        true,
		Revision:      d.Annotations[v1alpha1.AnnotationRevision],
		ReadyReplicas: st.ReadyReplicas,
		Desired:       want,
		RolledOut:     st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.Replicas == want,
		Ready: st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want &&
			st.ReadyReplicas >= want && st.AvailableReplicas >= want,
	}
}

// baseHash is the revision of a template without serin's config
// annotation (hash is its revision with it).
func baseHash(t *corev1.PodTemplateSpec, hash string) string {
	if _, ok := t.Annotations[v1alpha1.AnnotationConfig]; !ok {
		return hash
	}
	return v1alpha1.TemplateHash(withoutConfig(t))
}

// withoutConfig is a copy of t without serin's config annotation.
func withoutConfig(t *corev1.PodTemplateSpec) *corev1.PodTemplateSpec {
	n := t.DeepCopy()
	delete(n.Annotations, v1alpha1.AnnotationConfig)
	return n
}
