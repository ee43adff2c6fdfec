// Package v1alpha1 owns serin's API, group serin.dev: the Canary (the
// effective release spec and all release state in its status), the
// MetricTemplate (custom Prometheus queries) and the AlertProvider (where
// release notifications go), with their defaults, the Deployment annotations
// that stand in for a Canary, and validation that names the offending field.
//
// It depends on apimachinery only, so every other package can import it.
//
// +kubebuilder:object:generate=true
// +groupName=serin.dev
package v1alpha1
