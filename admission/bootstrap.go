package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"gomodules.xyz/jsonpatch/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// PathPodBootstrap serves the pod webhook of Istio bootstrap-override mode.
const PathPodBootstrap = "/mutate-v1-pod"

// BootstrapOverrideAnnotation makes Istio's sidecar injector merge a
// ConfigMap into the Envoy bootstrap of the pod.
const BootstrapOverrideAnnotation = "sidecar.istio.io/bootstrapOverride"

// RegisterPodBootstrap serves the webhook that points new pods of opted-in
// namespaces (label serin.dev/istio-bootstrap=enabled) at serin's
// bootstrap-override ConfigMap, whose static serin-xds cluster lets their
// Envoys fetch serin's EDS. A pod that names its own override keeps it.
// Its requests are counted in m.
func RegisterPodBootstrap(srv webhook.Server, m *Metrics, configMap string) {
	srv.Register(PathPodBootstrap, &webhook.Admission{Handler: m.instrument("pod-bootstrap", HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		return bootstrapPod(req.Object.Raw, configMap)
	}))})
}

func bootstrapPod(raw []byte, configMap string) admission.Response {
	var pod struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode pod: %w", err))
	}
	if _, ok := pod.Metadata.Annotations[BootstrapOverrideAnnotation]; ok {
		return admission.Allowed("")
	}
	if pod.Metadata.Annotations == nil {
		return admission.Patched("", jsonpatch.JsonPatchOperation{Operation: "add", Path: "/metadata/annotations",
			Value: map[string]string{BootstrapOverrideAnnotation: configMap}})
	}
	return admission.Patched("", jsonpatch.JsonPatchOperation{Operation: "add", Path: annotationPointer(BootstrapOverrideAnnotation), Value: configMap})
}
