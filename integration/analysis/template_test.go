package analysis

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/serin-dev/serin/api/querytemplate"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/prometheus"
)

// canaryRPSQuery is a MetricTemplate query: the canary's requests per
// second, from the variables serin fills in.
const canaryRPSQuery = `sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}"}[{{ interval }}]))`

// TestMetricTemplateAuth: a MetricTemplate whose provider is a Prometheus
// behind basic auth, with the credentials in a Secret that names that
// Prometheus as their destination, judges a release that is promoted on
// it.
func (e *env) testMetricTemplateAuth(t *testing.T) {
	ns := e.c.Namespace(t)
	e.serin.AllowSecrets(t, ns) // the credentials are in a Secret
	auth := &prometheus.BasicAuth{Username: "analysis", Password: "pa55-" + ns}
	p := prometheus.Run(t, e.c, prometheus.Options{Namespaces: []string{ns}, BasicAuth: auth})

	// The provider really needs the credentials.
	resp, err := http.Get(p.URL + "/api/v1/query?query=up") //nolint:noctx // test probe
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the provider answered %d without credentials, want 401", resp.StatusCode)
	}

	a := &app{e: e, t: t, ns: ns, replicas: 2}
	a.apply(fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: prom-auth, annotations: {serin.dev/allowed-addresses: %[3]q}}
stringData: {username: %[1]q, password: %[2]q}
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: canary-rps}
spec:
  provider: {type: prometheus, address: %[3]q, secretRef: {name: prom-auth}}
  query: %[4]q
`, auth.Username, auth.Password, p.URL, canaryRPSQuery))
	a.applyCanary(`
progressDeadlineSeconds: 60
analysis:
  interval: 3s
  threshold: 2
  stepWeight: 25
  maxWeight: 50
  metrics:
  - name: canary-rps
    templateRef: {name: canary-rps}
    thresholdRange: {min: 1}
`)
	a.deploy("1.0.0", nil)
	w := a.watch()
	a.waitPhase(v1alpha1.PhaseInitialized, time.Minute)
	a.startLoad(30)
	start := time.Now()
	a.deploy("2.0.0", nil)
	st := a.waitPhase(v1alpha1.PhaseSucceeded, 90*time.Second)
	if st.FailedChecks != 0 {
		t.Errorf("%d failed checks", st.FailedChecks)
	}
	passed := false
	for _, s := range w.since(start) {
		v := s.status.LastVerdict
		if got := sample(v, "canary-rps/canary"); strings.HasPrefix(v, "Promote") && strings.Contains(got, "(min 1) pass") && strings.Contains(got, "from prometheus") {
			passed = true
		}
	}
	if !passed {
		t.Error("no check passed on the template's value")
	}
}

// TestTemplateInjection: a templateVariables value with `"})` cannot leave
// its string. The same text pasted into the query unescaped would make the
// check pass on any canary (shown against the real Prometheus); rendered by
// serin it matches nothing, so the release never passes a check and fails
// at its deadline.
func (e *env) testTemplateInjection(t *testing.T) {
	const (
		query   = `sum(istio_requests_total{destination_workload_namespace="{{ namespace }}",destination_app="{{ variables.app }}"})`
		payload = `nope"}) or vector(1) #`
	)
	a := &app{e: e, t: t, ns: e.c.Namespace(t), replicas: 2}
	a.apply(fmt.Sprintf(`apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: requests-by-app}
spec:
  provider: {type: prometheus}
  query: %q
`, query))
	a.applyCanary(fmt.Sprintf(`
progressDeadlineSeconds: 12
analysis:
  interval: 2s
  threshold: 2
  stepWeight: 25
  maxWeight: 50
  metrics:
  - name: requests-by-app
    templateRef: {name: requests-by-app}
    templateVariables: {app: %q}
    thresholdRange: {min: 1}
`, payload))
	a.deploy("1.0.0", nil)
	w := a.watch()
	a.waitPhase(v1alpha1.PhaseInitialized, time.Minute)
	a.startLoad(20)
	start := time.Now()
	a.deploy("2.0.0", nil)
	st := a.waitPhase(v1alpha1.PhaseFailed, 90*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// What a naive string replacement would have sent: it passes.
	naive := strings.NewReplacer("{{ namespace }}", a.ns, "{{ variables.app }}", payload).Replace(query)
	vec, err := e.prom.Vector(ctx, naive)
	if err != nil || len(vec) != 1 || vec[0].Value < 1 {
		t.Fatalf("the unescaped query %s = %v, %v; the test expects it to escape and pass", naive, vec, err)
	}
	// What serin sends: the payload stays a label value and matches nothing.
	rendered, err := querytemplate.Render(query, querytemplate.Values{Namespace: a.ns, Variables: map[string]string{"app": payload}})
	if err != nil {
		t.Fatal(err)
	}
	vec, err = e.prom.Vector(ctx, rendered)
	if err != nil || len(vec) != 0 {
		t.Fatalf("the rendered query %s = %v, %v; want no series", rendered, vec, err)
	}
	if _, err := e.prom.WaitFor(ctx, fmt.Sprintf(`sum(istio_requests_total{destination_workload_namespace=%q,destination_app="podinfo"})`, a.ns),
		func(v model.Vector) bool { return len(v) == 1 && v[0].Value > 0 }); err != nil {
		t.Fatalf("the canary had no traffic, so the test proves nothing: %v", err)
	}

	nodata := 0
	for _, s := range w.since(start) {
		v := s.status.LastVerdict
		if strings.HasPrefix(v, "Promote") || strings.Contains(sample(v, "requests-by-app/canary"), "pass") {
			t.Errorf("a check passed: %s", s)
		}
		if strings.HasPrefix(v, "NoData") && strings.HasPrefix(sample(v, "requests-by-app/canary"), "nodata") {
			nodata++
		}
	}
	if nodata == 0 {
		t.Error("no check saw the template return no data")
	}
	if st.CanaryWeight != 0 {
		t.Errorf("failed at weight %d", st.CanaryWeight)
	}
	t.Logf("rendered query: %s; release ended: %s", rendered, st.Message)
}
