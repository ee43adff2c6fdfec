package flaggerv1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Canary is Flagger's Canary; serin runs it as a serin.dev Canary.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Weight",type=string,JSONPath=`.status.canaryWeight`
// +kubebuilder:printcolumn:name="FailedChecks",type=string,JSONPath=`.status.failedChecks`,priority=1
// +kubebuilder:printcolumn:name="Interval",type=string,JSONPath=`.spec.analysis.interval`,priority=1
// +kubebuilder:printcolumn:name="Mirror",type=boolean,JSONPath=`.spec.analysis.mirror`,priority=1
// +kubebuilder:printcolumn:name="StepWeight",type=string,JSONPath=`.spec.analysis.stepWeight`,priority=1
// +kubebuilder:printcolumn:name="StepWeights",type=string,JSONPath=`.spec.analysis.stepWeights`,priority=1
// +kubebuilder:printcolumn:name="MaxWeight",type=string,JSONPath=`.spec.analysis.maxWeight`,priority=1
// +kubebuilder:printcolumn:name="LastTransitionTime",type=string,JSONPath=`.status.lastTransitionTime`
type Canary struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CanarySpec `json:"spec"`
	// +optional
	Status CanaryStatus `json:"status,omitempty"`
}

// CanaryList is a list of Canaries.
//
// +kubebuilder:object:root=true
type CanaryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Canary `json:"items"`
}

// CanarySpec has exactly Flagger's top-level fields; their types are
// serin's, which carry every field of Flagger's schema.
type CanarySpec struct {
	// +optional
	Provider v1alpha1.Provider `json:"provider,omitempty"`
	// +optional
	MetricsServer string                        `json:"metricsServer,omitempty"`
	TargetRef     v1alpha1.LocalObjectReference `json:"targetRef"`
	// +optional
	AutoscalerRef *v1alpha1.AutoscalerReference `json:"autoscalerRef,omitempty"`
	// +optional
	IngressRef *v1alpha1.ExternalObjectReference `json:"ingressRef,omitempty"`
	// +optional
	RouteRef *v1alpha1.ExternalObjectReference `json:"routeRef,omitempty"`
	// +optional
	UpstreamRef *v1alpha1.ExternalObjectReference `json:"upstreamRef,omitempty"`
	// +optional
	Service v1alpha1.CanaryService `json:"service,omitempty"`
	// +optional
	Analysis *v1alpha1.CanaryAnalysis `json:"analysis,omitempty"`
	// +optional
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`
	// +optional
	SkipAnalysis bool `json:"skipAnalysis,omitempty"`
	// +optional
	RevertOnDeletion bool `json:"revertOnDeletion,omitempty"`
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// CanaryConditionType is Flagger's condition type.
type CanaryConditionType string

// ConditionPromoted is Flagger's one condition type.
const ConditionPromoted CanaryConditionType = "Promoted"

// CanaryCondition is Flagger's condition shape.
type CanaryCondition struct {
	Type   CanaryConditionType    `json:"type"`
	Status metav1.ConditionStatus `json:"status"`
	// +optional
	LastUpdateTime metav1.Time `json:"lastUpdateTime,omitempty"`
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// CanaryStatus has Flagger's status fields, written from the status of
// the serin.dev Canary that runs this one.
type CanaryStatus struct {
	// +optional
	Phase v1alpha1.CanaryPhase `json:"phase,omitempty"`
	// +optional
	FailedChecks int32 `json:"failedChecks"`
	// +optional
	CanaryWeight int32 `json:"canaryWeight"`
	// +optional
	Iterations int32 `json:"iterations"`
	// +optional
	TrackedConfigs map[string]string `json:"trackedConfigs,omitempty"`
	// LastAppliedSpec is the pod-template hash under release (or the
	// stable one between releases).
	// +optional
	LastAppliedSpec string `json:"lastAppliedSpec,omitempty"`
	// LastPromotedSpec is the pod-template hash of the stable pods.
	// +optional
	LastPromotedSpec string `json:"lastPromotedSpec,omitempty"`
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
	// +optional
	Conditions []CanaryCondition `json:"conditions,omitempty"`
}

// MetricTemplate is Flagger's MetricTemplate.
//
// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider.type`
type MetricTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec v1alpha1.MetricTemplateSpec `json:"spec"`
}

// MetricTemplateList is a list of MetricTemplates.
//
// +kubebuilder:object:root=true
type MetricTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MetricTemplate `json:"items"`
}

// AlertProvider is Flagger's AlertProvider.
//
// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
type AlertProvider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec v1alpha1.AlertProviderSpec `json:"spec"`
}

// AlertProviderList is a list of AlertProviders.
//
// +kubebuilder:object:root=true
type AlertProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AlertProvider `json:"items"`
}
