package admission

import (
	"context"
	"slices"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func canaryReview(raw string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: admissionv1.Create, Name: "podinfo",
		Kind:   metav1.GroupVersionKind{Group: "serin.dev", Version: "v1alpha1", Kind: "Canary"},
		Object: runtime.RawExtension{Raw: []byte(raw)},
	}}
}

func TestCanaryWarnings(t *testing.T) {
	h := withWarnings(validator(v1alpha1.ValidateCanary), canaryNotes)
	resp := h.Handle(context.Background(), canaryReview(`{"metadata":{"name":"podinfo"},"spec":{
		"provider":"nginx","targetRef":{"name":"podinfo"},
		"ingressRef":{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","name":"podinfo"},
		"service":{"port":80,"portDiscovery":true}}}`))
	if !resp.Allowed {
		t.Fatalf("denied: %v", resp.Result)
	}
	want := []string{
		"serin ignores spec.ingressRef: serin routes through its own xDS server (and Istio's sidecars), not through an Ingress controller",
		"serin ignores spec.provider=nginx: serin routes through its own xDS server (and Istio's sidecars), Gateway API routes or SMI TrafficSplits, and this provider is none of them",
	}
	if !slices.Equal(resp.Warnings, want) {
		t.Errorf("warnings:\n got %q\nwant %q", resp.Warnings, want)
	}

	resp = h.Handle(context.Background(), canaryReview(`{"metadata":{"name":"podinfo"},"spec":{"targetRef":{"name":"podinfo"},"provider":"istio"}}`))
	if !resp.Allowed || len(resp.Warnings) != 0 {
		t.Errorf("honoured spec: allowed=%v warnings=%q", resp.Allowed, resp.Warnings)
	}
	resp = h.Handle(context.Background(), canaryReview(`{"metadata":{"name":"podinfo"},"spec":{"targetRef":{"name":"podinfo"},
		"service":{"trafficPolicy":{"tls":{"mode":"SIMPLE"}}}}}`))
	if resp.Allowed || resp.Result == nil || resp.Result.Message == "" {
		t.Fatalf("tls mode SIMPLE allowed: %+v", resp)
	}
	t.Log(resp.Result.Message)
}

// TestNoWarningsForSameSpec: an update that leaves the spec alone (serin
// adding its finalizer) is not warned about again; a spec change is.
func TestNoWarningsForSameSpec(t *testing.T) {
	h := withWarnings(validator(v1alpha1.ValidateCanary), canaryNotes)
	old := `{"metadata":{"name":"podinfo"},"spec":{"targetRef":{"name":"podinfo"},"provider":"nginx"}}`
	req := canaryReview(`{"metadata":{"name":"podinfo","finalizers":["serin.dev/canary"]},"spec":{"provider":"nginx","targetRef":{"name":"podinfo"}}}`)
	req.Operation, req.OldObject = admissionv1.Update, runtime.RawExtension{Raw: []byte(old)}
	if resp := h.Handle(context.Background(), req); !resp.Allowed || len(resp.Warnings) != 0 {
		t.Errorf("same spec: allowed=%v warnings=%q", resp.Allowed, resp.Warnings)
	}
	req.Object.Raw = []byte(`{"metadata":{"name":"podinfo"},"spec":{"provider":"nginx","targetRef":{"name":"podinfo"},"suspend":true}}`)
	if resp := h.Handle(context.Background(), req); !resp.Allowed || len(resp.Warnings) != 1 {
		t.Errorf("changed spec: allowed=%v warnings=%q", resp.Allowed, resp.Warnings)
	}
}
