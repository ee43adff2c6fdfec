package admission

import (
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Hold decides what admission does to a managed Deployment: it returns the
// JSON patch that pauses it and records the candidate and stable revisions
// when its pod template differs from what the stable pods run, and nothing
// otherwise. old is nil on CREATE. It is a pure function of the two
// objects, so it is idempotent and safe for dry-run and reinvocation.
//
// The stable revision is the template the Deployment last rolled out: the
// old template if the old object was not held, else the recorded stable
// revision — unless this very request set the stable annotation to a new
// value (that is the engine promoting: it sets stable to the candidate and
// unpauses). A request that drops serin's annotations (`kubectl replace`,
// a GitOps replace or force sync) is not a promotion: the hold comes back.
func Hold(old, obj *appsv1.Deployment) []jsonpatch.JsonPatchOperation {
	if old == nil || !v1alpha1.Managed(obj.Annotations) {
		return nil
	}
	newHash := v1alpha1.TemplateHash(&obj.Spec.Template)
	oldAnn, newAnn := old.Annotations, obj.Annotations
	var stable string
	switch {
	case newAnn[v1alpha1.AnnotationStableRevision] != "" && newAnn[v1alpha1.AnnotationStableRevision] != oldAnn[v1alpha1.AnnotationStableRevision]:
		stable = newAnn[v1alpha1.AnnotationStableRevision]
	case held(old):
		stable = oldAnn[v1alpha1.AnnotationStableRevision]
	default:
		stable = v1alpha1.TemplateHash(&old.Spec.Template)
	}

	if newHash == stable {
		// The template is what the stable pods run: nothing to hold. A
		// candidate left from an earlier hold becomes the stable revision,
		// which tells the engine to end that release and unpause.
		if c, ok := newAnn[v1alpha1.AnnotationCandidateRevision]; ok && c != stable {
			return []jsonpatch.JsonPatchOperation{{Operation: "add", Path: annotationPointer(v1alpha1.AnnotationCandidateRevision), Value: stable}}
		}
		return nil
	}

	var ops []jsonpatch.JsonPatchOperation
	if !obj.Spec.Paused {
		ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: "/spec/paused", Value: true})
	}
	want := map[string]string{
		v1alpha1.AnnotationCandidateRevision: newHash,
		v1alpha1.AnnotationStableRevision:    stable,
	}
	if newAnn == nil {
		return append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: "/metadata/annotations", Value: want})
	}
	for _, k := range []string{v1alpha1.AnnotationCandidateRevision, v1alpha1.AnnotationStableRevision} {
		if v, ok := newAnn[k]; !ok || v != want[k] {
			ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: annotationPointer(k), Value: want[k]})
		}
	}
	return ops
}

// held reports whether a Deployment carries a candidate that is not its
// stable revision.
func held(d *appsv1.Deployment) bool {
	c := d.Annotations[v1alpha1.AnnotationCandidateRevision]
	return c != "" && c != d.Annotations[v1alpha1.AnnotationStableRevision]
}

// annotationPointer is the JSON pointer of an annotation (RFC 6901 escapes).
func annotationPointer(key string) string {
	return "/metadata/annotations/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}
