package providers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/analysis/prom"
	"github.com/serin-dev/serin/analysis/providers"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/egress"
)

// loopback allows the servers the tests start.
var loopback, _ = egress.ParseAllow([]string{"127.0.0.0/8"})

type templates map[string]*v1alpha1.MetricTemplate

func (m templates) MetricTemplate(_ context.Context, ns, name string) (*v1alpha1.MetricTemplate, error) {
	if t, ok := m[ns+"/"+name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("metrictemplate %s/%s not found", ns, name)
}

type secrets map[string]prom.ProviderSecret

func (s secrets) ProviderSecret(_ context.Context, ns, name string) (prom.ProviderSecret, error) {
	if d, ok := s[ns+"/"+name]; ok {
		return d, nil
	}
	return prom.ProviderSecret{}, fmt.Errorf("secret %s/%s not found", ns, name)
}

// check runs one analysis check of Canary test/podinfo (canary workload
// podinfo-canary) with one metric on template test/<name>, its value at
// most max, over a 1m window ending now.
func check(t *testing.T, a *analysis.Analyzer, name string, max float64) analysis.Result {
	t.Helper()
	c := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
		Spec: v1alpha1.CanarySpec{TargetRef: v1alpha1.LocalObjectReference{Name: "podinfo"},
			Analysis: &v1alpha1.CanaryAnalysis{Interval: "1m", Threshold: 5, Metrics: []v1alpha1.CanaryMetric{{
				Name: name, Interval: "1m", ThresholdRange: &v1alpha1.CanaryThresholdRange{Max: &max},
				TemplateRef: &v1alpha1.CrossNamespaceObjectReference{Name: name}}}}}}
	now := time.Now()
	res, err := a.Check(context.Background(), analysis.Input{Canary: c, WindowStart: now.Add(-5 * time.Minute), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func wantVerdict(t *testing.T, res analysis.Result, verdict analysis.Verdict, msg string) {
	t.Helper()
	if res.Verdict != verdict || !strings.Contains(res.Message, msg) {
		t.Fatalf("Check() = %s, want %s with %q", res, verdict, msg)
	}
}

// TestInfluxDB: InfluxQL templates against InfluxDB 1.x with
// authentication on: the Secret's username and password, the database
// from the address's db parameter, the first value of the first row.
func TestInfluxDB(t *testing.T) {
	base := StartInfluxDB(t, "serin")
	now := time.Now().Unix()
	InfluxWrite(t, base, "serin", fmt.Sprintf("requests,app=podinfo-canary latency=12.5 %d\nrequests,app=podinfo-canary latency=17.5 %d\n"+
		"requests,app=podinfo latency=900 %d\n", now-30, now-10, now-10))

	address := base + "/?db=serin"
	tpl := func(query, secret string) *v1alpha1.MetricTemplate {
		return &v1alpha1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Namespace: "test"}, Spec: v1alpha1.MetricTemplateSpec{
			Provider: v1alpha1.MetricProvider{Type: v1alpha1.ProviderInfluxDB, Address: address, SecretRef: &corev1.LocalObjectReference{Name: secret}},
			Query:    query}}
	}
	latency := `SELECT mean("latency") FROM "requests" WHERE "app" = '{{ target }}' AND time > now() - {{ interval }}`
	a := &analysis.Analyzer{
		Providers: &providers.Factory{Egress: loopback, Secrets: secrets{
			"test/influx": {Data: map[string][]byte{"username": []byte("admin"), "password": []byte("admin-pw"), "address": []byte(address)}},
			"test/wrong":  {Data: map[string][]byte{"username": []byte("admin"), "password": []byte("nope"), "address": []byte(address)}},
		}},
		Templates: templates{
			"test/latency":   tpl(latency, "influx"),
			"test/silent":    tpl(`SELECT mean("latency") FROM "requests" WHERE "app" = 'nobody' AND time > now() - {{ interval }}`, "influx"),
			"test/wrong-pw":  tpl(latency, "wrong"),
			"test/bad-query": tpl(`SELECT mean("latency") FROM`, "influx"),
		},
	}
	for _, m := range []string{"latency", "silent", "wrong-pw", "bad-query"} {
		if err := v1alpha1.ValidateMetricTemplate(a.Templates.(templates)["test/"+m]).ToAggregate(); err != nil {
			t.Fatalf("template %s: %v", m, err)
		}
	}
	wantVerdict(t, check(t, a, "latency", 20), analysis.Promote, "")
	wantVerdict(t, check(t, a, "latency", 10), analysis.Hold, "latency 15.00 > 10")
	wantVerdict(t, check(t, a, "silent", 10), analysis.NoData, "")
	res := check(t, a, "wrong-pw", 10)
	wantVerdict(t, res, analysis.Hold, "influxdb "+base+"/: rejected (4xx): authorization failed")
	if strings.Contains(res.Message, "nope") {
		t.Fatalf("the message holds the password: %s", res.Message)
	}
	wantVerdict(t, check(t, a, "bad-query", 10), analysis.Hold, "error parsing query")
}

// TestGraphite: render API templates against carbon-cache and
// graphite-web: the query string of /render, {{ interval }} in Graphite's
// units, the last non-null point.
func TestGraphite(t *testing.T) {
	web, carbon := startGraphite(t)
	now := time.Now().Unix()
	sendCarbon(t, carbon,
		fmt.Sprintf("stats.test.podinfo-canary.errors 3 %d", now-30),
		fmt.Sprintf("stats.test.podinfo-canary.errors 4 %d", now-20),
		fmt.Sprintf("stats.test.podinfo.errors 1 %d", now-20))
	// carbon writes the points on its own time: wait until graphite-web
	// serves them.
	waitFor(t, "the points in graphite-web", "", func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, web+"/render?format=json&from=-5min&target=stats.test.*.errors", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Count(string(body), "[4.0,") == 1 && strings.Count(string(body), "[1.0,") == 1
	})
	tpl := func(query string) *v1alpha1.MetricTemplate {
		return &v1alpha1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Namespace: "test"}, Spec: v1alpha1.MetricTemplateSpec{
			Provider: v1alpha1.MetricProvider{Type: v1alpha1.ProviderGraphite, Address: web}, Query: query}}
	}
	a := &analysis.Analyzer{
		Providers: &providers.Factory{Egress: loopback},
		Templates: templates{
			"test/errors":   tpl("target=sumSeries(stats.{{ namespace }}.{{ target }}.errors)"),
			"test/summed":   tpl("target=summarize(\n  stats.{{ namespace }}.{{ target }}.errors,\n  '{{ interval }}',\n  'sum',\n  true\n)&from=-{{ interval }}"),
			"test/silent":   tpl("target=stats.{{ namespace }}.nobody.errors"),
			"test/unparsed": tpl("target=sumSeries(stats.{{ namespace }}.{{ target }}.errors"),
			"test/unknown":  tpl("target=noSuchFunction(stats.{{ namespace }}.{{ target }}.errors)"),
		},
	}
	for name, tp := range a.Templates.(templates) {
		if err := v1alpha1.ValidateMetricTemplate(tp).ToAggregate(); err != nil {
			t.Fatalf("template %s: %v", name, err)
		}
	}
	wantVerdict(t, check(t, a, "errors", 5), analysis.Promote, "")
	wantVerdict(t, check(t, a, "errors", 3.5), analysis.Hold, "errors 4.00 > 3.5")
	wantVerdict(t, check(t, a, "summed", 5), analysis.Hold, "summed 7.00 > 5")
	wantVerdict(t, check(t, a, "silent", 5), analysis.NoData, "")
	// graphite-web answers a target it cannot parse with no series, and
	// an unknown function with 400.
	wantVerdict(t, check(t, a, "unparsed", 5), analysis.NoData, "")
	wantVerdict(t, check(t, a, "unknown", 5), analysis.Hold, "graphite "+web+": rejected (4xx)")
}
