package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/querytemplate"
)

// MetricTemplate is a custom check: a Prometheus query with template
// variables, referenced by a Canary's analysis.metrics[].templateRef.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=mt,categories=serin
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider.type`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.provider.address`
type MetricTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec MetricTemplateSpec `json:"spec"`
}

// MetricTemplateList is a list of MetricTemplates.
//
// +kubebuilder:object:root=true
type MetricTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MetricTemplate `json:"items"`
}

// MetricTemplateSpec is a query and where to run it.
type MetricTemplateSpec struct {
	Provider MetricProvider `json:"provider"`
	// Query is the provider's query (PromQL for prometheus) with
	// template variables: {{ name }}, {{ namespace }}, {{ target }},
	// {{ canary }}, {{ stable }}, {{ service }}, {{ ingress }},
	// {{ interval }} and {{ variables.NAME }}. Every value is escaped for
	// where it lands.
	// +kubebuilder:validation:MinLength=1
	Query string `json:"query"`
}

// ProviderType is a metrics backend.
// +kubebuilder:validation:Enum=prometheus;influxdb;datadog;externalmetrics;stackdriver;cloudwatch;newrelic;graphite;dynatrace;keptn;splunk
type ProviderType string

// Metric providers serin queries. Thanos, Mimir and VictoriaMetrics
// speak Prometheus's API and are type prometheus.
const (
	ProviderPrometheus ProviderType = "prometheus"
	ProviderGraphite   ProviderType = "graphite"
	ProviderInfluxDB   ProviderType = "influxdb"
	ProviderDatadog    ProviderType = "datadog"
	ProviderNewRelic   ProviderType = "newrelic"
	ProviderCloudWatch ProviderType = "cloudwatch"
)

// ProviderTypes are the provider types serin queries, sorted.
var ProviderTypes = []ProviderType{ProviderCloudWatch, ProviderDatadog, ProviderGraphite,
	ProviderInfluxDB, ProviderNewRelic, ProviderPrometheus}

// QueryDialect is the template language of a provider type's queries:
// PromQL for Prometheus, Text for the others.
func QueryDialect(t ProviderType) querytemplate.Dialect {
	if t == "" || t == ProviderPrometheus {
		return querytemplate.PromQL
	}
	return querytemplate.Text
}

// MetricProvider says where and how to query.
type MetricProvider struct {
	// Type defaults to prometheus.
	// +optional
	Type ProviderType `json:"type,omitempty"`
	// Address of the provider, e.g. http://prometheus.istio-system:9090.
	// Prometheus defaults to serin's --prometheus-address, Datadog and
	// New Relic to their public APIs; CloudWatch takes it as an endpoint
	// override.
	// +optional
	Address string `json:"address,omitempty"`
	// SecretRef names a Secret in the template's namespace with the
	// provider's credentials: username and password (basic auth) or token
	// (bearer) for prometheus and graphite; token and org for influxdb;
	// datadog_api_key and datadog_application_key; newrelic_account_id
	// and newrelic_query_key.
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`
	// InsecureSkipVerify skips TLS verification of the provider.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`

	// Flagger's fields (see compat.go for what serin makes of each).

	// Headers are sent with every query, as in net/http: a list of values
	// per name.
	// +optional
	Headers map[string][]string `json:"headers,omitempty"`
	// Region of the provider (CloudWatch).
	// +optional
	Region string `json:"region,omitempty"`
}
