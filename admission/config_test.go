package admission

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// configPodJSON is a pod as a ReplicaSet creates it, with fields the Go
// types do not know (they must survive the patch).
const configPodJSON = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"podinfo-7d9f-","namespace":"test",
"annotations":{"serin.dev/config":"configmap/app=aaaaaaaaaa,secret/db=bbbbbbbbbb"},"labels":{"app":"podinfo"}},
"spec":{"containers":[{"name":"app","image":"podinfo:6.0.0","futureField":true,
"env":[{"name":"PW","valueFrom":{"secretKeyRef":{"name":"db","key":"pw"}}},{"name":"OTHER","valueFrom":{"configMapKeyRef":{"name":"untracked","key":"k"}}}],
"envFrom":[{"configMapRef":{"name":"app"}}]}],
"volumes":[{"name":"files","configMap":{"name":"app"}},{"name":"p","projected":{"sources":[{"secret":{"name":"db"}}]}}]}}`

func TestConfigPodPointsAtSnapshots(t *testing.T) {
	resp := ConfigPod([]byte(configPodJSON))
	if !resp.Allowed || len(resp.Patches) == 0 {
		t.Fatalf("response %+v", resp)
	}
	patch, err := json.Marshal(resp.Patches)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply([]byte(configPodJSON))
	if err != nil {
		t.Fatalf("patch %s does not apply: %v", patch, err)
	}
	if !strings.Contains(string(out), `"futureField":true`) {
		t.Fatalf("the patch lost a field: %s", out)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range v1alpha1.ConfigRefs(&pod.Spec) {
		got = append(got, r.String())
	}
	want := "configmap/app-aaaaaaaaaa configmap/untracked secret/db-bbbbbbbbbb"
	if strings.Join(got, " ") != want {
		t.Fatalf("refs = %v, want %s", got, want)
	}
	if pod.Labels[v1alpha1.LabelConfigSnapshots] != "true" || pod.Labels["app"] != "podinfo" {
		t.Fatalf("labels %v", pod.Labels)
	}
	// Reinvoked (another webhook changed the pod after serin): nothing more.
	if again := ConfigPod(out); !again.Allowed || len(again.Patches) != 0 {
		t.Fatalf("second pass %+v", again)
	}
}

func TestConfigPodLeavesOthers(t *testing.T) {
	plain := `{"metadata":{"name":"x","labels":{"a":"b"}},"spec":{"volumes":[{"name":"f","configMap":{"name":"app"}}]}}`
	if r := ConfigPod([]byte(plain)); !r.Allowed || len(r.Patches) != 0 {
		t.Fatalf("a pod without the annotation changed: %+v", r)
	}
	bad := `{"metadata":{"name":"x","annotations":{"serin.dev/config":"nonsense"}},"spec":{}}`
	r := ConfigPod([]byte(bad))
	if !r.Allowed || len(r.Patches) != 0 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], v1alpha1.AnnotationConfig) {
		t.Fatalf("an unreadable annotation: %+v", r)
	}
}
