package admission

import (
	"context"
	"errors"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// ownershipFunc adapts a function to OwnershipReader.
type ownershipFunc func(context.Context, string) (v1alpha1.HostOwnership, error)

func (f ownershipFunc) Ownership(ctx context.Context, ns string) (v1alpha1.HostOwnership, error) {
	return f(ctx, ns)
}

func canaryRaw(hosts ...string) runtime.RawExtension {
	b := `{"apiVersion":"serin.dev/v1alpha1","kind":"Canary","metadata":{"name":"web","namespace":"a"},` +
		`"spec":{"targetRef":{"name":"web"},"service":{"port":80,"hosts":["` + strings.Join(hosts, `","`) + `"]}}}`
	return runtime.RawExtension{Raw: []byte(b)}
}

func TestValidateCanaryHosts(t *testing.T) {
	reads := 0
	owners := ownershipFunc(func(_ context.Context, ns string) (v1alpha1.HostOwnership, error) {
		reads++
		if ns == "broken" {
			return v1alpha1.HostOwnership{}, errors.New("api server away")
		}
		return v1alpha1.HostOwnership{Namespace: ns, Services: []string{"web"}, Claims: []v1alpha1.HostClaim{
			{Host: "shop.example.com", Namespace: "shop", Kind: v1alpha1.ClaimGateway, Source: "Gateway shop/public"},
		}}, nil
	})
	h := validateCanary(owners)
	req := func(op admissionv1.Operation, ns string, obj, old runtime.RawExtension) admission.Request {
		return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Operation: op, Namespace: ns,
			Kind: metav1.GroupVersionKind{Group: "serin.dev", Version: "v1alpha1", Kind: "Canary"}, Object: obj, OldObject: old}}
	}
	for _, tt := range []struct {
		name  string
		req   admission.Request
		allow bool
		msg   string
		reads int
	}{
		{"own service name", req(admissionv1.Create, "a", canaryRaw("web.a.svc.cluster.local"), runtime.RawExtension{}), true, "", 1},
		{"another namespace's gateway host", req(admissionv1.Create, "a", canaryRaw("web", "shop.example.com"), runtime.RawExtension{}), false,
			`spec.service.hosts[1]: Forbidden: host "shop.example.com" belongs to namespace "shop" (Gateway shop/public)`, 1},
		{"update that adds the host", req(admissionv1.Update, "a", canaryRaw("shop.example.com"), canaryRaw("web")), false, "shop.example.com", 1},
		{"update that keeps the hosts", req(admissionv1.Update, "a", canaryRaw("shop.example.com"), canaryRaw("shop.example.com")), true, "", 0},
		{"ownership unreadable", req(admissionv1.Create, "broken", canaryRaw("web"), runtime.RawExtension{}), false, "api server away", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reads = 0
			resp := h.Handle(context.Background(), tt.req)
			if resp.Allowed != tt.allow {
				t.Fatalf("allowed %t, want %t: %+v", resp.Allowed, tt.allow, resp.Result)
			}
			if tt.msg != "" && (resp.Result == nil || !strings.Contains(resp.Result.Message, tt.msg)) {
				t.Errorf("message %+v, want it to contain %q", resp.Result, tt.msg)
			}
			if reads != tt.reads {
				t.Errorf("ownership read %d times, want %d", reads, tt.reads)
			}
		})
	}
}
