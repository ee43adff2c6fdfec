package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// PathPodConfig serves the pod webhook of config tracking.
const PathPodConfig = "/mutate-v1-pod-config"

// RegisterPodConfig serves the webhook that points each new pod of a
// template whose config serin tracks (pod annotation serin.dev/config) at
// the immutable snapshots of the content revisions that annotation names,
// and labels it serin.dev/config-snapshots. Stable and canary pods thus
// read the content of their own revision, whatever the objects hold now.
// Its requests are counted in m.
func RegisterPodConfig(srv webhook.Server, m *Metrics) {
	srv.Register(PathPodConfig, &webhook.Admission{Handler: m.instrument("pod-config", HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		return ConfigPod(req.Object.Raw)
	}))})
}

// ConfigPod answers the config webhook for one pod: a patch to the
// snapshots, or the pod unchanged (with a warning) when its annotation
// cannot be read. It is a pure function of the pod.
func ConfigPod(raw []byte) admission.Response {
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode pod: %w", err))
	}
	value, ok := pod.Annotations[v1alpha1.AnnotationConfig]
	if !ok || pod.Labels[v1alpha1.LabelConfigSnapshots] != "" {
		return admission.Allowed("")
	}
	revs, err := v1alpha1.ParseConfig(value)
	if err != nil {
		return admission.Allowed("").WithWarnings(fmt.Sprintf("serin: pod left on its own ConfigMaps and Secrets: %v", err))
	}
	// The patch is the difference between the decoded pod and its
	// rewrite, both encoded the same way: only the names and the label,
	// never fields the decoding would add or drop.
	before, err := json.Marshal(&pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("encode pod: %w", err))
	}
	v1alpha1.RewriteConfigNames(&pod.Spec, revs)
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[v1alpha1.LabelConfigSnapshots] = "true"
	after, err := json.Marshal(&pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("encode pod: %w", err))
	}
	ops, err := jsonpatch.CreatePatch(before, after)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("patch pod: %w", err))
	}
	return admission.Patched("serin points the pod at the snapshots of its config revision", ops...)
}
