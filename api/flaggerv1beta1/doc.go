// Package flaggerv1beta1 serves Flagger's own kinds, group flagger.app
// version v1beta1 (Canary, MetricTemplate, AlertProvider), so manifests
// written for Flagger run unchanged. It has no model of its own: the specs
// are serin's v1alpha1 types under Flagger's field names, and convert.go
// is the one place that turns these objects into serin's and serin's
// status back into Flagger's.
//
// +kubebuilder:object:generate=true
// +groupName=flagger.app
// +versionName=v1beta1
package flaggerv1beta1
