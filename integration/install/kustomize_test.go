package install

import (
	"reflect"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestKustomizeMatchesChart: the kustomize base renders the same webhooks
// and RBAC as the chart with default values, and the cert-manager overlay
// the same as the chart's certManager mode.
func TestKustomizeMatchesChart(t *testing.T) {
	base := decode(t, kustomize(t, "manifests"))
	chart := decode(t, helmTemplate(t, "serin-system", false))
	checkWebhooks(t, base.webhooks(t, "serin"), "serin-system", "", "serin-webhook")
	if g, c := base.webhooks(t, "serin"), chart.webhooks(t, "serin"); !reflect.DeepEqual(g, c) {
		t.Errorf("webhooks differ:\nkustomize %+v\nchart     %+v", g, c)
	}
	for _, kn := range [][2]string{{"ClusterRole", "serin"}, {"Role", "serin"}, {"ClusterRole", "serin-metrics-auth"}, {"ClusterRole", "serin-metrics-reader"}} {
		kind, name := kn[0], kn[1]
		if base.get(kind, name) == nil || chart.get(kind, name) == nil {
			t.Errorf("%s %s: in kustomize %v, in the chart %v", kind, name, base.get(kind, name) != nil, chart.get(kind, name) != nil)
			continue
		}
		g := as[rbacv1.ClusterRole](t, base.get(kind, name)).Rules
		c := as[rbacv1.ClusterRole](t, chart.get(kind, name)).Rules
		if !sameRules(g, c) {
			t.Errorf("%s %s rules differ:\nkustomize %+v\nchart     %+v", kind, name, g, c)
		}
	}
	if b, c := base.get("ClusterRoleBinding", "serin-metrics-auth"), chart.get("ClusterRoleBinding", "serin-metrics-auth"); b == nil || c == nil || !reflect.DeepEqual(b.Object["subjects"], c.Object["subjects"]) {
		t.Error("the metrics-auth ClusterRoleBinding differs between kustomize and the chart")
	}
	for _, u := range base {
		if ns := u.GetNamespace(); ns != "" && ns != "serin-system" {
			t.Errorf("%s %s in namespace %s", u.GetKind(), u.GetName(), ns)
		}
	}
	kd := as[appsv1.Deployment](t, base.get("Deployment", "serin")).Spec.Template.Spec.Containers[0].Args
	cd := as[appsv1.Deployment](t, chart.get("Deployment", "serin")).Spec.Template.Spec.Containers[0].Args
	if !slices.Equal(sortedCopy(kd), sortedCopy(cd)) {
		t.Errorf("controller args differ:\nkustomize %v\nchart     %v", kd, cd)
	}
	checkLeastPrivilege(t, base, "serin-system", "serin-webhook-tls")

	cm := decode(t, kustomize(t, "manifests/certmanager"))
	cmChart := decode(t, helmTemplate(t, "serin-system", false, "certificates.mode=certManager"))
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		if got := cm.get(kind, "serin").GetAnnotations()["cert-manager.io/inject-ca-from"]; got != "serin-system/serin-webhook" {
			t.Errorf("%s inject-ca-from = %q", kind, got)
		}
	}
	if cm.get("Secret", "serin-webhook-tls") != nil {
		t.Error("the cert-manager overlay keeps the builtin Secret")
	}
	for _, kind := range []string{"Issuer", "Certificate"} {
		for _, u := range cmChart.kinds(kind) {
			k := cm.get(kind, u.GetName())
			if k == nil || !reflect.DeepEqual(k.Object["spec"], u.Object["spec"]) {
				t.Errorf("%s %s differs from the chart's", kind, u.GetName())
			}
		}
	}
	kd = as[appsv1.Deployment](t, cm.get("Deployment", "serin")).Spec.Template.Spec.Containers[0].Args
	cd = as[appsv1.Deployment](t, cmChart.get("Deployment", "serin")).Spec.Template.Spec.Containers[0].Args
	if !slices.Equal(sortedCopy(kd), sortedCopy(cd)) {
		t.Errorf("cert-manager controller args differ:\nkustomize %v\nchart     %v", kd, cd)
	}
	if g, c := as[rbacv1.Role](t, cm.get("Role", "serin")).Rules, as[rbacv1.Role](t, cmChart.get("Role", "serin")).Rules; !sameRules(g, c) {
		t.Errorf("cert-manager Role rules differ:\nkustomize %+v\nchart     %+v", g, c)
	}
}
