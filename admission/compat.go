package admission

import (
	"context"
	"encoding/json"
	"reflect"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// withWarnings adds a warning for each field of an allowed object that
// serin accepts and ignores (v1alpha1.Compat), so kubectl prints what a
// Flagger manifest asks for that serin does not do.
func withWarnings[T any](h admission.Handler, notes func(*T) []v1alpha1.FieldNote) admission.Handler {
	return HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		resp := h.Handle(ctx, req)
		if !resp.Allowed || len(req.Object.Raw) == 0 || sameSpec(req) {
			return resp
		}
		obj := new(T)
		if json.Unmarshal(req.Object.Raw, obj) != nil {
			return resp
		}
		resp.Warnings = append(resp.Warnings, Warnings(notes(obj))...)
		return resp
	})
}

// sameSpec reports an update that leaves the spec as it was (metadata or
// finalizers only, as serin's own updates are): it is not warned about
// again.
func sameSpec(req admission.Request) bool {
	if req.Operation != admissionv1.Update || len(req.OldObject.Raw) == 0 {
		return false
	}
	var obj, old struct {
		Spec json.RawMessage `json:"spec"`
	}
	if json.Unmarshal(req.Object.Raw, &obj) != nil || json.Unmarshal(req.OldObject.Raw, &old) != nil {
		return false
	}
	var a, b any
	if json.Unmarshal(obj.Spec, &a) != nil || json.Unmarshal(old.Spec, &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}

// Warnings words field notes as admission warnings.
func Warnings(notes []v1alpha1.FieldNote) []string {
	out := make([]string, 0, len(notes))
	for _, n := range notes {
		out = append(out, "serin ignores "+n.String())
	}
	return out
}

func canaryNotes(c *v1alpha1.Canary) []v1alpha1.FieldNote { return v1alpha1.Ignored(&c.Spec) }

func metricTemplateNotes(t *v1alpha1.MetricTemplate) []v1alpha1.FieldNote {
	return v1alpha1.IgnoredMetricTemplate(&t.Spec)
}

func alertProviderNotes(a *v1alpha1.AlertProvider) []v1alpha1.FieldNote {
	return v1alpha1.IgnoredAlertProvider(&a.Spec)
}
