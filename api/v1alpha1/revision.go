package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
)

// TemplateHash is the revision of a pod template: a hash of the template
// as the API server stores it (defaulted), normalized so that only what
// changes the pods counts. Replicas, the Deployment's own metadata and
// paused are not part of the template, so they never make a new revision.
func TemplateHash(t *corev1.PodTemplateSpec) string {
	n := t.DeepCopy()
	n.CreationTimestamp.Reset()
	// Fields the API server owns or that do not reach the pod.
	n.ResourceVersion, n.UID, n.Generation, n.ManagedFields = "", "", 0, nil
	if len(n.Labels) == 0 {
		n.Labels = nil
	}
	if len(n.Annotations) == 0 {
		n.Annotations = nil
	}
	b, err := json.Marshal(n)
	if err != nil {
		// A PodTemplateSpec always marshals; keep the signature simple.
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:5])
}
