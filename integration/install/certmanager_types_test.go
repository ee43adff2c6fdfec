package install

import (
	"slices"
	"strings"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestCertManagerObjectsAreTyped decodes the certManager-mode rendering
// into cert-manager's own API types, strictly, and checks that the pieces
// agree: the serving Certificate covers the webhook Service, is issued by
// the CA Issuer, lands in the Secret serin mounts, and the webhook
// configurations ask cert-manager's cainjector for that Certificate's CA.
func TestCertManagerObjectsAreTyped(t *testing.T) {
	const ns = "serin-system"
	objs := decode(t, helmTemplate(t, ns, false, "certificates.mode=certManager"))
	strict := func(kind, name string, out any) {
		t.Helper()
		u := objs.get(kind, name)
		if u == nil {
			t.Fatalf("no %s %s rendered", kind, name)
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
			t.Fatalf("%s %s does not decode strictly into cert-manager's type: %v", kind, name, err)
		}
	}
	var selfSigned, caIssuer cmv1.Issuer
	var ca, serving cmv1.Certificate
	strict("Issuer", "serin-selfsigned", &selfSigned)
	strict("Issuer", "serin-ca", &caIssuer)
	strict("Certificate", "serin-ca", &ca)
	strict("Certificate", "serin-webhook", &serving)

	if selfSigned.Spec.SelfSigned == nil {
		t.Error("the root issuer is not self-signed")
	}
	if !ca.Spec.IsCA || ca.Spec.IssuerRef.Name != selfSigned.Name {
		t.Errorf("CA certificate: isCA=%v issuer=%s", ca.Spec.IsCA, ca.Spec.IssuerRef.Name)
	}
	if caIssuer.Spec.CA == nil || caIssuer.Spec.CA.SecretName != ca.Spec.SecretName {
		t.Errorf("CA issuer does not sign with the CA certificate's secret %q", ca.Spec.SecretName)
	}
	if serving.Spec.IssuerRef.Name != caIssuer.Name || serving.Spec.IsCA {
		t.Errorf("serving certificate issued by %q (isCA %v)", serving.Spec.IssuerRef.Name, serving.Spec.IsCA)
	}
	if !slices.Contains(serving.Spec.DNSNames, "serin-webhook.serin-system.svc") {
		t.Errorf("serving certificate DNS names %v miss the webhook service", serving.Spec.DNSNames)
	}
	if !slices.Contains(serving.Spec.Usages, cmv1.UsageServerAuth) {
		t.Errorf("serving certificate usages %v lack server auth", serving.Spec.Usages)
	}

	var dep appsv1.Deployment
	strict("Deployment", "serin", &dep)
	mounted := false
	for _, v := range dep.Spec.Template.Spec.Volumes {
		mounted = mounted || (v.Secret != nil && v.Secret.SecretName == serving.Spec.SecretName)
	}
	args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " ")
	if !mounted || !strings.Contains(args, "--webhook-cert-mode=dir") {
		t.Errorf("serin does not read the cert-manager secret %q from a mounted dir (args %s)", serving.Spec.SecretName, args)
	}

	want := ns + "/" + serving.Name
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	strict("MutatingWebhookConfiguration", "serin", &mwc)
	strict("ValidatingWebhookConfiguration", "serin", &vwc)
	for kind, ann := range map[string]map[string]string{"mutating": mwc.Annotations, "validating": vwc.Annotations} {
		if got := ann["cert-manager.io/inject-ca-from"]; got != want {
			t.Errorf("%s webhook configuration: inject-ca-from %q, want %q", kind, got, want)
		}
	}
}
