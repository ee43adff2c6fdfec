package admission

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/serin-dev/serin/integration/harness"
)

// testMetricsAuth: serin's /metrics on the real cluster lets in only
// callers the API server authenticates and authorizes for GET /metrics —
// no token: 401; a forged one: refused (the TokenReview rejects it;
// controller-runtime answers 500); a real token of a service account
// without the chart's metrics-reader ClusterRole: 403; one bound to it:
// 200 with serin's metrics. Plain HTTP gets no metrics.
func (e *env) testMetricsAuth(t *testing.T) {
	c, s := e.c, e.s
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
