package install

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestChartMetricsAccess: the chart gives serin what the /metrics filter
// asks the API server (TokenReview, SubjectAccessReview) and scrapers a
// reader role; the ServiceMonitor scrapes over HTTPS with a token; with
// metrics.secure=false serin serves plain HTTP and needs neither.
func TestChartMetricsAccess(t *testing.T) {
	objs := decode(t, helmTemplate(t, "serin-system", false, "serviceMonitor.enabled=true",
		"metrics.readers[0].kind=ServiceAccount,metrics.readers[0].name=prometheus,metrics.readers[0].namespace=monitoring"))
	auth := as[rbacv1.ClusterRole](t, objs.get("ClusterRole", "serin-metrics-auth"))
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	}
	if !sameRules(auth.Rules, want) {
		t.Errorf("metrics-auth rules %+v", auth.Rules)
	}
	b := as[rbacv1.ClusterRoleBinding](t, objs.get("ClusterRoleBinding", "serin-metrics-auth"))
	if b.RoleRef.Name != "serin-metrics-auth" || len(b.Subjects) != 1 || b.Subjects[0].Name != "serin" || b.Subjects[0].Namespace != "serin-system" {
		t.Errorf("metrics-auth binding %+v", b)
	}
	reader := as[rbacv1.ClusterRole](t, objs.get("ClusterRole", "serin-metrics-reader"))
	if !sameRules(reader.Rules, []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}) {
		t.Errorf("metrics-reader rules %+v", reader.Rules)
	}
	rb := as[rbacv1.ClusterRoleBinding](t, objs.get("ClusterRoleBinding", "serin-metrics-reader"))
	if len(rb.Subjects) != 1 || rb.Subjects[0].Name != "prometheus" || rb.Subjects[0].Namespace != "monitoring" {
		t.Errorf("metrics-reader binding %+v", rb.Subjects)
	}
	ep := serviceMonitorEndpoint(t, objs)
	if ep["scheme"] != "https" || ep["bearerTokenFile"] != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
		t.Errorf("ServiceMonitor endpoint %v", ep)
	}
	if tls, _ := ep["tlsConfig"].(map[string]any); tls["insecureSkipVerify"] != true {
		t.Errorf("ServiceMonitor tlsConfig %v (the certificate is self-signed)", ep["tlsConfig"])
	}

	// A certificate from a Secret: mounted, passed, verified by the scraper.
	objs = decode(t, helmTemplate(t, "serin-system", false, "serviceMonitor.enabled=true", "metrics.certSecret=serin-metrics-tls"))
	if args := controllerArgs(t, objs); !slices.Contains(args, "--metrics-cert-dir=/var/run/serin/metrics-certs") {
		t.Errorf("args %v", args)
	}
	if tls, _ := serviceMonitorEndpoint(t, objs)["tlsConfig"].(map[string]any); tls["serverName"] != "serin-metrics.serin-system.svc" || tls["insecureSkipVerify"] != nil {
		t.Errorf("ServiceMonitor tlsConfig %v", tls)
	}

	// Plain HTTP only on request.
	objs = decode(t, helmTemplate(t, "serin-system", false, "serviceMonitor.enabled=true", "metrics.secure=false"))
	if args := controllerArgs(t, objs); !slices.Contains(args, "--metrics-secure=false") {
		t.Errorf("args %v", args)
	}
	if objs.get("ClusterRole", "serin-metrics-auth") != nil || serviceMonitorEndpoint(t, objs)["scheme"] != nil {
		t.Error("metrics.secure=false still renders the metrics-auth role or an https ServiceMonitor")
	}
}

func controllerArgs(t *testing.T, objs objects) []string {
	t.Helper()
	return as[appsv1.Deployment](t, objs.get("Deployment", "serin")).Spec.Template.Spec.Containers[0].Args
}

func serviceMonitorEndpoint(t *testing.T, objs objects) map[string]any {
	t.Helper()
	sm := objs.get("ServiceMonitor", "serin")
	if sm == nil {
		t.Fatal("no ServiceMonitor")
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v", eps)
	}
	return eps[0].(map[string]any)
}
