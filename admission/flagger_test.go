package admission

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func flaggerReview(kind, raw, old string) admission.Request {
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: admissionv1.Create, Name: "podinfo", Namespace: "test",
		Kind:   metav1.GroupVersionKind{Group: "flagger.app", Version: "v1beta1", Kind: kind},
		Object: runtime.RawExtension{Raw: []byte(raw)},
	}}
	if old != "" {
		req.Operation, req.OldObject = admissionv1.Update, runtime.RawExtension{Raw: []byte(old)}
	}
	return req
}

// TestFlaggerKinds: flagger.app objects get serin's validation and
// warnings, with Flagger's kind in the message.
func TestFlaggerKinds(t *testing.T) {
	ctx := context.Background()
	canaries := asSerin(withWarnings(validateCanary(nil), canaryNotes), flaggerCanary)
	resp := canaries.Handle(ctx, flaggerReview("Canary", `{"apiVersion":"flagger.app/v1beta1","kind":"Canary",
		"metadata":{"name":"podinfo","namespace":"test"},"spec":{"provider":"nginx","targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},
		"ingressRef":{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","name":"podinfo"},
		"service":{"port":80},"analysis":{"interval":"1m","threshold":5,"maxWeight":50,"stepWeight":10}}}`, ""))
	if !resp.Allowed {
		t.Fatalf("denied: %v", resp.Result)
	}
	if len(resp.Warnings) != 2 || !strings.Contains(resp.Warnings[0], "spec.ingressRef") || !strings.Contains(resp.Warnings[1], "spec.provider=nginx") {
		t.Errorf("warnings %q", resp.Warnings)
	}

	resp = canaries.Handle(ctx, flaggerReview("Canary", `{"metadata":{"name":"podinfo"},"spec":{"targetRef":{"name":"podinfo"},
		"analysis":{"interval":"1m","stepWeight":150}}}`, ""))
	if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, "spec.analysis.stepWeight") ||
		!strings.Contains(resp.Result.Message, `Canary.flagger.app "podinfo" is invalid`) {
		t.Fatalf("stepWeight 150 allowed or badly worded: %+v", resp.Result)
	}
	t.Log(resp.Result.Message)

	// An update that only touches metadata is not warned about again.
	same := `{"metadata":{"name":"podinfo"},"spec":{"provider":"nginx","targetRef":{"name":"podinfo"}}}`
	if resp := canaries.Handle(ctx, flaggerReview("Canary", same, same)); !resp.Allowed || len(resp.Warnings) != 0 {
		t.Errorf("same spec: allowed=%v warnings=%q", resp.Allowed, resp.Warnings)
	}

	templates := asSerin(withWarnings(validator(v1alpha1.ValidateMetricTemplate), metricTemplateNotes), flaggerMetricTemplate)
	resp = templates.Handle(ctx, flaggerReview("MetricTemplate", `{"metadata":{"name":"errors"},"spec":{
		"provider":{"type":"prometheus","address":"http://prometheus:9090"},"query":"sum(up)"}}`, ""))
	if !resp.Allowed {
		t.Errorf("metric template denied: %v", resp.Result)
	}
	resp = templates.Handle(ctx, flaggerReview("MetricTemplate", `{"metadata":{"name":"errors"},"spec":{"provider":{"type":"prometheus"}}}`, ""))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "spec.query") {
		t.Errorf("metric template without a query: %+v", resp.Result)
	}

	providers := asSerin(withWarnings(validator(v1alpha1.ValidateAlertProvider), alertProviderNotes), flaggerAlertProvider)
	resp = providers.Handle(ctx, flaggerReview("AlertProvider", `{"metadata":{"name":"on-call"},"spec":{"type":"carrier-pigeon"}}`, ""))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "spec.type") {
		t.Errorf("alert provider of an unknown type: %+v", resp.Result)
	}
	if resp := providers.Handle(ctx, flaggerReview("AlertProvider", `{"metadata":{"name":"x"}`, "")); resp.Allowed {
		t.Error("undecodable object allowed")
	}
}
