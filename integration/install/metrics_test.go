package install

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

// TestMetricsAuth: serin's /metrics on the real cluster lets in only
// callers the API server authenticates and authorizes for GET /metrics —
// no token: 401; a forged one: refused (the TokenReview rejects it;
// controller-runtime answers 500); a real token of a service account
// without the chart's metrics-reader ClusterRole: 403; one bound to it:
// 200 with serin's metrics. Plain HTTP gets no metrics.
func TestMetricsAuth(t *testing.T) {
	c := cluster.Get(t)
	s := harness.Install(t, c, harness.Options{})
	t.Cleanup(func() {
		// Later tests install the chart on their own terms.
		_, _ = c.Kubectl(t.Context(), "", "delete", "--ignore-not-found", "mutatingwebhookconfiguration/serin", "validatingwebhookconfiguration/serin")
	})
	// What the chart grants, asked of the real API server: serin may ask
	// who a caller is and what it may do; the scraper may GET /metrics.
	for _, q := range [][]string{
		{"create", "tokenreviews.authentication.k8s.io", "--as=system:serviceaccount:" + harness.Namespace + ":serin"},
		{"create", "subjectaccessreviews.authorization.k8s.io", "--as=system:serviceaccount:" + harness.Namespace + ":serin"},
		{"get", "/metrics", "--as=system:serviceaccount:" + harness.Namespace + ":" + harness.MetricsScraper},
	} {
		if out, err := c.Kubectl(t.Context(), "", append([]string{"auth", "can-i"}, q...)...); err != nil || strings.TrimSpace(out) != "yes" {
			t.Errorf("kubectl auth can-i %v: %q %v", q, out, err)
		}
	}
	nobody, err := harness.ServiceAccountToken(t.Context(), c.Kubectl, "metrics-nobody", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		want        int // 0: refused, whatever the status
	}{
		{"NoToken", "", http.StatusUnauthorized},
		{"ForgedToken", "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl", 0},
		{"NotAReader", nobody, http.StatusForbidden},
		{"Reader", s.MetricsToken(), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := scrape(t, s.MetricsURL(), tc.token)
			if code != tc.want && (tc.want != 0 || code == http.StatusOK) {
				t.Fatalf("GET /metrics: %d, want %d: %.200s", code, tc.want, body)
			}
			if has := strings.Contains(body, "# HELP serin_"); has != (tc.want == http.StatusOK) {
				t.Errorf("serin's metrics in the answer: %v, want %v", has, tc.want == http.StatusOK)
			}
		})
	}
	t.Run("PlainHTTP", func(t *testing.T) {
		resp, err := harness.Scrape(strings.Replace(s.MetricsURL(), "https://", "http://", 1), s.MetricsToken())
		if err != nil {
			return // the TLS listener dropped the connection
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK || strings.Contains(string(b), "serin_") {
			t.Errorf("plain HTTP answered %d: %.200s", resp.StatusCode, b)
		}
	})
}

// scrape GETs url with the bearer token and returns the status and body.
func scrape(t *testing.T, url, token string) (int, string) {
	t.Helper()
	resp, err := harness.Scrape(url, token)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

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
