package v1alpha1

import (
	"maps"
	"strings"
)

// Track names one of the two sets of pods a release splits traffic
// between. The same words label canary pods (serin.dev/track), name the
// per-track xDS clusters and localities, and key load reports.
type Track string

// The tracks of a release.
const (
	TrackStable Track = "stable"
	TrackCanary Track = "canary"
)

// Tracks are both tracks, stable first.
var Tracks = [...]Track{TrackStable, TrackCanary}

// LoadCounts are the requests the data plane reported for one track.
//
// +kubebuilder:object:generate=false
type LoadCounts struct {
	// Success and Errors are completed requests; Issued includes those
	// still in flight.
	Success, Errors, Issued uint64
}

// Add adds o's counts to c.
func (c *LoadCounts) Add(o LoadCounts) {
	c.Success += o.Success
	c.Errors += o.Errors
	c.Issued += o.Issued
}

// ValidCookieName reports whether s is an HTTP cookie name (an RFC 6265
// token: visible ASCII without separators).
func ValidCookieName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return true
}

// TargetName is the name of the Deployment a Canary releases: its
// targetRef, or the Canary's own name.
func (c *Canary) TargetName() string {
	if c.Spec.TargetRef.Name != "" {
		return c.Spec.TargetRef.Name
	}
	return c.Name
}

// CopySuffix is appended to the Deployment's name and to the values of its
// selector labels to name the canary copy and label its pods.
const CopySuffix = "-canary"

// CopyName is the name of the canary copy of a Deployment.
func CopyName(target string) string { return target + CopySuffix }

// CanaryLabels are the canary pods' labels: the template's labels with the
// values of the selector labels suffixed, so plain Service selectors
// (kube-proxy, non-mesh clients) never reach canary pods, and
// serin.dev/track=canary added.
func CanaryLabels(templateLabels, selector map[string]string) map[string]string {
	out := maps.Clone(templateLabels)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range selector {
		out[k] = v + CopySuffix
	}
	out[LabelTrack] = string(TrackCanary)
	return out
}

// CanarySelector is the copy's selector: the Deployment's match labels,
// suffixed.
func CanarySelector(selector map[string]string) map[string]string {
	out := make(map[string]string, len(selector))
	for k, v := range selector {
		out[k] = v + CopySuffix
	}
	return out
}

// PrimarySuffix is appended to the name of the user's Service to name the
// Service serin owns that selects the stable pods.
const PrimarySuffix = "-primary"

// CanaryServiceName is the Service serin owns beside the user's Service
// <service> that selects the canary pods only, as Flagger names it.
func CanaryServiceName(service string) string { return service + CopySuffix }

// PrimaryServiceName is the Service serin owns beside the user's Service
// <service> that selects the stable pods only, as Flagger names it.
func PrimaryServiceName(service string) string { return service + PrimarySuffix }
