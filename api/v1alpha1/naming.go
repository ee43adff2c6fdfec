package v1alpha1

import "maps"

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
	out[LabelTrack] = "canary"
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
