package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AlertProvider is where release notifications go: Slack, Microsoft Teams,
// Discord or a generic webhook.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=ap,categories=serin
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
type AlertProvider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec AlertProviderSpec `json:"spec"`
}

// AlertProviderList is a list of AlertProviders.
//
// +kubebuilder:object:root=true
type AlertProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AlertProvider `json:"items"`
}

// AlertProviderType is a notification service.
// +kubebuilder:validation:Enum=slack;msteams;discord;generic;rocket;gchat
type AlertProviderType string

// Alert providers.
const (
	AlertSlack   AlertProviderType = "slack"
	AlertMSTeams AlertProviderType = "msteams"
	AlertDiscord AlertProviderType = "discord"
	AlertGeneric AlertProviderType = "generic"
)

// AlertProviderSpec says where notifications go.
type AlertProviderSpec struct {
	Type AlertProviderType `json:"type"`
	// Channel (Slack).
	// +optional
	Channel string `json:"channel,omitempty"`
	// Username shown as the sender.
	// +optional
	Username string `json:"username,omitempty"`
	// Address is the webhook URL. Prefer SecretRef: a webhook URL is a
	// credential.
	// +optional
	Address string `json:"address,omitempty"`
	// SecretRef names a Secret in the provider's namespace whose key
	// "address" holds the webhook URL.
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`

	// Proxy is Flagger's HTTP proxy for the provider's calls.
	// +optional
	Proxy string `json:"proxy,omitempty"`
}
