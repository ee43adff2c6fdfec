package podsim

import (
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const unknown = "unknown"

// cronJobSuffix matches the scheduled-time suffix a CronJob puts on the Jobs it creates.
var cronJobSuffix = regexp.MustCompile(`^(.+)-\d{8,10}$`)

// IdentityForPod derives the names Istio's telemetry would report for the pod as a
// destination.
func IdentityForPod(pod *corev1.Pod) Identity {
	workload := WorkloadName(pod)
	return Identity{
		Pod:               pod.Name,
		Namespace:         pod.Namespace,
		Workload:          workload,
		App:               labelOr(pod.Labels, unknown, "app"),
		Version:           labelOr(pod.Labels, unknown, "version"),
		CanonicalService:  labelOr(pod.Labels, workload, "service.istio.io/canonical-name", "app.kubernetes.io/name", "app"),
		CanonicalRevision: labelOr(pod.Labels, "latest", "service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"),
		Mesh:              MeshForPod(pod),
	}
}

// MeshForPod is MeshLinkerd for a pod annotated linkerd.io/inject: enabled
// (as Linkerd's injector would mesh it), else MeshAny.
func MeshForPod(pod *corev1.Pod) Mesh {
	if pod.Annotations[linkerdInjectAnnotation] == "enabled" {
		return MeshLinkerd
	}
	return MeshAny
}

// WorkloadName returns the pod's workload name the way Istio derives it: the name of
// the controlling owner of a generated pod, with a ReplicaSet's "-<pod-template-hash>"
// suffix removed (giving the Deployment name) and a CronJob Job's timestamp suffix
// removed; the pod name when there is no controller.
func WorkloadName(pod *corev1.Pod) string {
	if pod.GenerateName == "" {
		return pod.Name
	}
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil || ref.Name == "" {
		return pod.Name
	}
	switch ref.Kind {
	case "ReplicaSet":
		if hash := pod.Labels["pod-template-hash"]; hash != "" && strings.HasSuffix(ref.Name, "-"+hash) {
			return strings.TrimSuffix(ref.Name, "-"+hash)
		}
	case "Job":
		if m := cronJobSuffix.FindStringSubmatch(ref.Name); m != nil {
			return m[1]
		}
	}
	return ref.Name
}

// labelOr returns the value of the first key present with a non-empty value, else def.
func labelOr(labels map[string]string, def string, keys ...string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return def
}
