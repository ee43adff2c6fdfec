package flaggerv1beta1

import (
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The one place where Flagger's objects become serin's and back. The
// specs share their types, so conversion copies fields; what serin has
// and Flagger lacks (canaryReplicas, judge, loadReports, minProxies) stays
// unset, and serin's defaults apply.

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// ToSerin is the serin.dev Canary that runs c: same name, namespace,
// labels, annotations and spec.
func ToSerin(c *Canary) *v1alpha1.Canary {
	out := &v1alpha1.Canary{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Canary"},
		ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace,
			Labels: copyMap(c.Labels), Annotations: copyMap(c.Annotations)},
		Spec: SpecToSerin(&c.Spec),
	}
	// kubectl's record of the Flagger manifest describes the Flagger
	// object, not this one.
	delete(out.Annotations, lastApplied)
	return out
}

// SpecToSerin converts a Flagger spec.
func SpecToSerin(s *CanarySpec) v1alpha1.CanarySpec {
	s = s.DeepCopy()
	return v1alpha1.CanarySpec{
		Provider: s.Provider, MetricsServer: s.MetricsServer, TargetRef: s.TargetRef, AutoscalerRef: s.AutoscalerRef,
		IngressRef: s.IngressRef, RouteRef: s.RouteRef, UpstreamRef: s.UpstreamRef, Service: s.Service,
		Analysis: s.Analysis, ProgressDeadlineSeconds: s.ProgressDeadlineSeconds, SkipAnalysis: s.SkipAnalysis,
		RevertOnDeletion: s.RevertOnDeletion, Suspend: s.Suspend,
	}
}

// SpecFromSerin converts serin's spec to Flagger's, dropping serin's own
// fields.
func SpecFromSerin(s *v1alpha1.CanarySpec) CanarySpec {
	s = s.DeepCopy()
	return CanarySpec{
		Provider: s.Provider, MetricsServer: s.MetricsServer, TargetRef: s.TargetRef, AutoscalerRef: s.AutoscalerRef,
		IngressRef: s.IngressRef, RouteRef: s.RouteRef, UpstreamRef: s.UpstreamRef, Service: s.Service,
		Analysis: s.Analysis, ProgressDeadlineSeconds: s.ProgressDeadlineSeconds, SkipAnalysis: s.SkipAnalysis,
		RevertOnDeletion: s.RevertOnDeletion, Suspend: s.Suspend,
	}
}

// StatusFromSerin is the Flagger status that shows st: the same phase,
// weight, checks and iterations; lastAppliedSpec the revision under
// release (else the stable one), lastPromotedSpec the stable revision;
// every condition in Flagger's shape (Promoted among them), by type.
func StatusFromSerin(st *v1alpha1.CanaryStatus) CanaryStatus {
	out := CanaryStatus{
		Phase: st.Phase, FailedChecks: st.FailedChecks, CanaryWeight: st.CanaryWeight, Iterations: st.Iterations,
		LastAppliedSpec: st.CanaryRevision, LastPromotedSpec: st.StableRevision, LastTransitionTime: st.LastTransitionTime,
	}
	if out.LastAppliedSpec == "" {
		out.LastAppliedSpec = st.StableRevision
	}
	for _, c := range st.Conditions {
		out.Conditions = append(out.Conditions, CanaryCondition{
			Type: CanaryConditionType(c.Type), Status: c.Status, LastUpdateTime: c.LastTransitionTime,
			LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message,
		})
	}
	sort.Slice(out.Conditions, func(i, j int) bool { return out.Conditions[i].Type < out.Conditions[j].Type })
	return out
}

// MetricTemplateToSerin converts a Flagger MetricTemplate.
func MetricTemplateToSerin(t *MetricTemplate) *v1alpha1.MetricTemplate {
	return &v1alpha1.MetricTemplate{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "MetricTemplate"},
		ObjectMeta: metav1.ObjectMeta{Name: t.Name, Namespace: t.Namespace, Labels: copyMap(t.Labels), Annotations: copyMap(t.Annotations)},
		Spec:       *t.Spec.DeepCopy(),
	}
}

// MetricTemplateFromSerin converts serin's MetricTemplate to Flagger's.
func MetricTemplateFromSerin(t *v1alpha1.MetricTemplate) *MetricTemplate {
	return &MetricTemplate{
		TypeMeta:   metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "MetricTemplate"},
		ObjectMeta: metav1.ObjectMeta{Name: t.Name, Namespace: t.Namespace, Labels: copyMap(t.Labels), Annotations: copyMap(t.Annotations)},
		Spec:       *t.Spec.DeepCopy(),
	}
}

// AlertProviderToSerin converts a Flagger AlertProvider.
func AlertProviderToSerin(a *AlertProvider) *v1alpha1.AlertProvider {
	return &v1alpha1.AlertProvider{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "AlertProvider"},
		ObjectMeta: metav1.ObjectMeta{Name: a.Name, Namespace: a.Namespace, Labels: copyMap(a.Labels), Annotations: copyMap(a.Annotations)},
		Spec:       *a.Spec.DeepCopy(),
	}
}

// AlertProviderFromSerin converts serin's AlertProvider to Flagger's.
func AlertProviderFromSerin(a *v1alpha1.AlertProvider) *AlertProvider {
	return &AlertProvider{
		TypeMeta:   metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "AlertProvider"},
		ObjectMeta: metav1.ObjectMeta{Name: a.Name, Namespace: a.Namespace, Labels: copyMap(a.Labels), Annotations: copyMap(a.Annotations)},
		Spec:       *a.Spec.DeepCopy(),
	}
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
