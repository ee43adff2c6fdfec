package admission

import (
	"encoding/json"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func deployment(image string, ann map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test", Annotations: ann},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "podinfo"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "podinfo"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

func managed(extra ...string) map[string]string {
	m := map[string]string{v1alpha1.AnnotationCanary: "enabled"}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// apply runs the patch against the object's JSON the way the API server does.
func apply(t *testing.T, d *appsv1.Deployment, ops []jsonpatch.JsonPatchOperation) *appsv1.Deployment {
	t.Helper()
	if len(ops) == 0 {
		return d
	}
	raw, _ := json.Marshal(d)
	pb, _ := json.Marshal(ops)
	p, err := jsonpatchapply.DecodePatch(pb)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("apply %s: %v", pb, err)
	}
	var res appsv1.Deployment
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func TestHold(t *testing.T) {
	v1 := deployment("podinfo:1", managed())
	h1 := v1alpha1.TemplateHash(&v1.Spec.Template)
	h2 := v1alpha1.TemplateHash(&deployment("podinfo:2", nil).Spec.Template)
	h3 := v1alpha1.TemplateHash(&deployment("podinfo:3", nil).Spec.Template)
	heldV2 := deployment("podinfo:2", managed(v1alpha1.AnnotationCandidateRevision, h2, v1alpha1.AnnotationStableRevision, h1))
	heldV2.Spec.Paused = true

	scaled := deployment("podinfo:1", managed())
	scaled.Spec.Replicas = ptr.To[int32](5)
	labelled := deployment("podinfo:1", managed())
	labelled.Labels = map[string]string{"team": "a"}
	unmanaged := deployment("podinfo:2", nil)
	v3OnHeld := deployment("podinfo:3", managed(v1alpha1.AnnotationCandidateRevision, h2, v1alpha1.AnnotationStableRevision, h1))
	v3OnHeld.Spec.Paused = true
	revertOnHeld := deployment("podinfo:1", managed(v1alpha1.AnnotationCandidateRevision, h2, v1alpha1.AnnotationStableRevision, h1))
	revertOnHeld.Spec.Paused = true
	ssaDropsPaused := heldV2.DeepCopy()
	ssaDropsPaused.Spec.Paused = false
	// kubectl replace sends the manifest as written: no paused, no
	// serin annotations.
	replaceHeld := deployment("podinfo:2", managed())
	replaceWithStable := deployment("podinfo:1", managed())
	promote := heldV2.DeepCopy()
	promote.Spec.Paused = false
	promote.Annotations[v1alpha1.AnnotationStableRevision] = h2
	restart := deployment("podinfo:1", managed())
	restart.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-22T00:00:00Z"}

	tests := []struct {
		name      string
		old, obj  *appsv1.Deployment
		wantHeld  bool
		candidate string
		stable    string
	}{
		{name: "create is admitted unchanged", old: nil, obj: v1},
		{name: "unmanaged update is left alone", old: deployment("podinfo:1", nil), obj: unmanaged},
		{name: "scale only is not held", old: v1, obj: scaled},
		{name: "label only is not held", old: v1, obj: labelled},
		{name: "new image is held", old: v1, obj: deployment("podinfo:2", managed()), wantHeld: true, candidate: h2, stable: h1},
		{name: "rollout restart is a new revision", old: v1, obj: restart, wantHeld: true, candidate: v1alpha1.TemplateHash(&restart.Spec.Template), stable: h1},
		{name: "re-apply of the held revision changes nothing", old: heldV2, obj: heldV2.DeepCopy(), wantHeld: true, candidate: h2, stable: h1},
		{name: "server-side apply dropping paused is paused again", old: heldV2, obj: ssaDropsPaused, wantHeld: true, candidate: h2, stable: h1},
		{name: "newer revision during a hold keeps the stable", old: heldV2, obj: v3OnHeld, wantHeld: true, candidate: h3, stable: h1},
		{name: "revert to stable ends the hold", old: heldV2, obj: revertOnHeld, candidate: h1, stable: h1},
		{name: "promotion by the engine is not held", old: heldV2, obj: promote, candidate: h2, stable: h2},
		{name: "replace of the held revision is held again", old: heldV2, obj: replaceHeld, wantHeld: true, candidate: h2, stable: h1},
		{name: "replace with the stable revision is not held", old: heldV2, obj: replaceWithStable},
		{name: "opt-in with a new template in one apply is held", old: deployment("podinfo:1", nil), obj: deployment("podinfo:2", managed()), wantHeld: true, candidate: h2, stable: h1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := Hold(tt.old, tt.obj)
			got := apply(t, tt.obj.DeepCopy(), ops)
			if tt.wantHeld != got.Spec.Paused && tt.wantHeld {
				t.Fatalf("paused = %v, want held; ops %v", got.Spec.Paused, ops)
			}
			if !tt.wantHeld && len(ops) > 0 && got.Spec.Paused != tt.obj.Spec.Paused {
				t.Fatalf("paused changed without a hold: ops %v", ops)
			}
			if tt.wantHeld || tt.candidate != "" || tt.stable != "" {
				if c := got.Annotations[v1alpha1.AnnotationCandidateRevision]; c != tt.candidate {
					t.Errorf("candidate = %q, want %q", c, tt.candidate)
				}
				if s := got.Annotations[v1alpha1.AnnotationStableRevision]; tt.wantHeld && s != tt.stable {
					t.Errorf("stable = %q, want %q", s, tt.stable)
				}
			}
			if tt.old == nil || !v1alpha1.Managed(tt.obj.Annotations) || (!tt.wantHeld && tt.candidate == "" && tt.stable == "") {
				if len(ops) != 0 {
					t.Errorf("want no patch, got %v", ops)
				}
			}
			// Idempotent: admitting the result again changes nothing.
			if again := Hold(tt.old, got); len(again) != 0 {
				t.Errorf("second admission patched again: %v", again)
			}
		})
	}
}

func TestHoldPatchKeepsUnknownFields(t *testing.T) {
	old := deployment("podinfo:1", managed())
	obj := deployment("podinfo:2", managed())
	raw, _ := json.Marshal(obj)
	// A field this Go type does not know must survive the patch.
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	m["spec"].(map[string]any)["futureField"] = map[string]any{"keep": true}
	raw, _ = json.Marshal(m)
	pb, _ := json.Marshal(Hold(old, obj))
	p, err := jsonpatchapply.DecodePatch(pb)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	_ = json.Unmarshal(out, &res)
	spec := res["spec"].(map[string]any)
	if spec["futureField"] == nil || spec["paused"] != true {
		t.Fatalf("patched object lost fields or was not paused: %s", out)
	}
}

func TestAnnotationPointer(t *testing.T) {
	if got := annotationPointer("serin.dev/a~b"); got != "/metadata/annotations/serin.dev~1a~0b" {
		t.Fatal(got)
	}
}
