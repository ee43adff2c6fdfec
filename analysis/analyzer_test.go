package analysis

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis/prom"
	"github.com/serin-dev/serin/analysis/providers"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/egress"
)

// promServer is a real HTTP server answering Prometheus instant queries
// with per-workload samples chosen by the query's shape.
type promServer struct {
	*httptest.Server
	mu      sync.Mutex
	queries []string
	auth    []string
	// requests, errors and p99 are per workload (destination_workload,
	// or deployment for Linkerd's series).
	requests, errors, p99 map[string]string
	custom                string
}

func newPromServer(t *testing.T) *promServer {
	p := &promServer{requests: map[string]string{}, errors: map[string]string{}, p99: map[string]string{}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		q := r.Form.Get("query")
		p.mu.Lock()
		p.queries = append(p.queries, q)
		p.auth = append(p.auth, r.Header.Get("Authorization"))
		var samples map[string]string
		switch {
		case strings.HasPrefix(q, "histogram_quantile"):
			samples = p.p99
		case strings.Contains(q, `response_code=~"5.."`), strings.Contains(q, `classification="failure"`):
			samples = p.errors
		case strings.Contains(q, "istio_requests_total"), strings.Contains(q, "response_total{"):
			samples = p.requests
		default:
			custom := p.custom
			p.mu.Unlock()
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"scalar","result":[1700000000,%q]}}`, custom)
			return
		}
		label := "destination_workload"
		if strings.Contains(q, "by (deployment)") || strings.Contains(q, "by (le, deployment)") {
			label = "deployment" // Linkerd's series
		}
		var parts []string
		for wl, v := range samples {
			parts = append(parts, fmt.Sprintf(`{"metric":{%q:%q},"value":[1700000000,%q]}`, label, wl, v))
		}
		p.mu.Unlock()
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[%s]}}`, strings.Join(parts, ","))
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *promServer) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.queries...)
}

type templates map[string]*v1alpha1.MetricTemplate

func (t templates) MetricTemplate(_ context.Context, ns, name string) (*v1alpha1.MetricTemplate, error) {
	if tpl, ok := t[ns+"/"+name]; ok {
		return tpl, nil
	}
	return nil, fmt.Errorf("metrictemplate %s/%s not found", ns, name)
}

type secretMap map[string]prom.ProviderSecret

func (s secretMap) ProviderSecret(_ context.Context, ns, name string) (prom.ProviderSecret, error) {
	if d, ok := s[ns+"/"+name]; ok {
		return d, nil
	}
	return prom.ProviderSecret{}, fmt.Errorf("secret %s/%s not found", ns, name)
}

// loopback is the egress policy of the tests: their servers listen on
// 127.0.0.1, which an admin has to allow.
var loopback, _ = egress.ParseAllow([]string{"127.0.0.0/8"})

// lrs records the calls and returns fixed counts per cluster.
type lrs struct {
	mu     sync.Mutex
	calls  []string
	counts map[string]map[v1alpha1.Track]v1alpha1.LoadCounts
}

func (l *lrs) LoadReports(cluster string, since, until time.Time) map[v1alpha1.Track]v1alpha1.LoadCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf("%s %s..%s", cluster, since.Format("15:04:05"), until.Format("15:04:05")))
	return l.counts[cluster]
}

var t0 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

func canary(metrics ...v1alpha1.CanaryMetric) *v1alpha1.Canary {
	return &v1alpha1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
		Spec: v1alpha1.CanarySpec{
			TargetRef: v1alpha1.LocalObjectReference{Name: "podinfo"},
			Analysis:  &v1alpha1.CanaryAnalysis{Interval: "1m", Threshold: 5, Metrics: metrics},
		},
	}
}

func srMetric() v1alpha1.CanaryMetric {
	return v1alpha1.CanaryMetric{Name: v1alpha1.MetricRequestSuccessRate, Interval: "1m", ThresholdRange: rng(ptr(99), nil)}
}

func durMetric() v1alpha1.CanaryMetric {
	return v1alpha1.CanaryMetric{Name: v1alpha1.MetricRequestDuration, Interval: "1m", ThresholdRange: rng(nil, ptr(500))}
}

func TestCheckPrometheusBuiltins(t *testing.T) {
	p := newPromServer(t)
	p.requests["podinfo-canary"], p.requests["podinfo"] = "100", "900"
	p.errors["podinfo-canary"], p.errors["podinfo"] = "2", "1"
	p.p99["podinfo-canary"], p.p99["podinfo"] = "1200", "90"
	var logs []string
	a := &Analyzer{Prometheus: &prom.Factory{Default: prom.Config{Address: p.URL}, Egress: loopback},
		Log: funcr.New(func(prefix, args string) { logs = append(logs, args) }, funcr.Options{})}
	in := Input{Canary: canary(srMetric(), durMetric()), WindowStart: t0, Now: t0.Add(30 * time.Second)}
	res, err := a.Check(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != Hold || !res.FailedCheck {
		t.Fatalf("Check() = %s", res)
	}
	if want := "Halt podinfo.test advancement success rate 98.00% < 99%, request duration 1.2s > 500ms"; res.Message != want {
		t.Fatalf("Message = %q, want %q", res.Message, want)
	}
	// The step began 30s ago: the 1m metric window is cut to 30s.
	for _, q := range p.seen() {
		if !strings.Contains(q, "[30s]") || !strings.Contains(q, `destination_workload=~"podinfo|podinfo-canary"`) {
			t.Errorf("query window or workloads wrong: %s", q)
		}
	}
	if len(logs) != 1 || !strings.Contains(logs[0], `"analysis verdict"`) || !strings.Contains(logs[0], `"request-success-rate/canary"="98% (min 99%) fail n=100 from prometheus"`) {
		t.Errorf("log lines = %q", logs)
	}
}

// TestCheckBuiltinsBySeries: the built-in checks read Linkerd's series
// for provider linkerd only, and judge them as they judge Istio's.
func TestCheckBuiltinsBySeries(t *testing.T) {
	istio := []string{"istio_requests_total{", "istio_request_duration_milliseconds_bucket{", `destination_workload=~"podinfo|podinfo-canary"`}
	linkerd := []string{"response_total{", "response_latency_ms_bucket{", `deployment=~"podinfo|podinfo-canary"`, `direction="inbound"`}
	for _, tt := range []struct {
		provider v1alpha1.Provider
		want     []string
	}{
		{"", istio},
		{"istio", istio},
		{"gatewayapi:v1", istio},
		{"kubernetes", istio},
		{"linkerd", linkerd},
	} {
		t.Run(string(tt.provider), func(t *testing.T) {
			p := newPromServer(t)
			p.requests["podinfo-canary"], p.requests["podinfo"] = "100", "900"
			p.errors["podinfo-canary"], p.errors["podinfo"] = "2", "1"
			p.p99["podinfo-canary"], p.p99["podinfo"] = "1200", "90"
			a := &Analyzer{Prometheus: &prom.Factory{Default: prom.Config{Address: p.URL}, Egress: loopback}}
			c := canary(srMetric(), durMetric())
			c.Spec.Provider = tt.provider
			res, err := a.Check(context.Background(), Input{Canary: c, WindowStart: t0, Now: t0.Add(30 * time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			if want := "Halt podinfo.test advancement success rate 98.00% < 99%, request duration 1.2s > 500ms"; res.Message != want {
				t.Fatalf("Message = %q, want %q", res.Message, want)
			}
			all := strings.Join(p.seen(), "\n")
			for _, part := range tt.want {
				if !strings.Contains(all, part) {
					t.Errorf("no query has %s:\n%s", part, all)
				}
			}
			if mixed := tt.provider == "linkerd" == strings.Contains(all, "istio_"); mixed {
				t.Errorf("queries read the other mesh's series:\n%s", all)
			}
		})
	}
}

func TestCheckNoTrafficIsNoData(t *testing.T) {
	p := newPromServer(t)
	p.requests["podinfo"] = "500"
	a := &Analyzer{Prometheus: &prom.Factory{Default: prom.Config{Address: p.URL}, Egress: loopback}}
	res, err := a.Check(context.Background(), Input{Canary: canary(srMetric()), WindowStart: t0, Now: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != NoData || res.FailedCheck {
		t.Fatalf("Check() = %s, want NoData", res)
	}
}

func TestCheckWindowTooShort(t *testing.T) {
	a := &Analyzer{}
	res, err := a.Check(context.Background(), Input{Canary: canary(srMetric()), WindowStart: t0, Now: t0.Add(300 * time.Millisecond)})
	if err != nil || res.Verdict != NoData {
		t.Fatalf("Check() = %s, %v; want NoData", res, err)
	}
}

func TestCheckTemplate(t *testing.T) {
	p := newPromServer(t)
	p.custom = "7.5"
	tpl := &v1alpha1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "not-found", Namespace: "istio-system"},
		Spec: v1alpha1.MetricTemplateSpec{
			Provider: v1alpha1.MetricProvider{Address: p.URL, SecretRef: &corev1.LocalObjectReference{Name: "prom-auth"}},
			Query:    `sum(rate(requests{ns="{{ namespace }}",w="{{ target }}",team="{{ variables.team }}"}[{{ interval }}]))`,
		}}
	a := &Analyzer{
		Prometheus: &prom.Factory{Egress: loopback, Secrets: secretMap{
			"istio-system/prom-auth": {Data: map[string][]byte{"token": []byte("t0k"), "address": []byte(p.URL)}},
			"istio-system/unbound":   {Data: map[string][]byte{"token": []byte("s3cret")}},
		}},
		Templates: templates{"istio-system/not-found": tpl},
	}
	m := v1alpha1.CanaryMetric{Name: "404s", Interval: "2m", ThresholdRange: rng(nil, ptr(5)),
		TemplateRef:       &v1alpha1.CrossNamespaceObjectReference{Name: "not-found", Namespace: "istio-system"},
		TemplateVariables: map[string]string{"team": `a"} or vector(1) #`}}
	res, err := a.Check(context.Background(), Input{Canary: canary(m), WindowStart: t0, Now: t0.Add(5 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != Hold || res.Message != "Halt podinfo.test advancement 404s 7.50 > 5" {
		t.Fatalf("Check() = %s", res)
	}
	want := `sum(rate(requests{ns="test",w="podinfo-canary",team="a\"} or vector(1) #"}[2m]))`
	if q := p.seen(); len(q) != 1 || q[0] != want {
		t.Fatalf("queries = %q, want %q", q, want)
	}
	if p.auth[0] != "Bearer t0k" {
		t.Fatalf("Authorization = %q", p.auth[0])
	}

	// A template whose Secret does not name its address is a failed check
	// that names the template and the Secret; nothing is sent.
	tpl.Spec.Provider.SecretRef.Name = "unbound"
	res, err = a.Check(context.Background(), Input{Canary: canary(m), WindowStart: t0, Now: t0.Add(5 * time.Minute)})
	if err != nil || res.Verdict != Hold || !res.FailedCheck || !strings.Contains(res.Message, "metric template istio-system/not-found") ||
		!strings.Contains(res.Message, "secret istio-system/unbound") || strings.Contains(res.Message, "s3cret") || len(p.seen()) != 1 {
		t.Fatalf("Check() = %s, %v; %d queries", res, err, len(p.seen()))
	}

	// A missing template is a failed check that names it.
	m.TemplateRef.Name = "gone"
	res, err = a.Check(context.Background(), Input{Canary: canary(m), WindowStart: t0, Now: t0.Add(5 * time.Minute)})
	if err != nil || res.Verdict != Hold || !res.FailedCheck || !strings.Contains(res.Message, "metric template istio-system/gone") {
		t.Fatalf("Check() = %s, %v", res, err)
	}
}

func TestCheckLoadReports(t *testing.T) {
	cl := "serin/test/podinfo/9898"
	reports := &lrs{counts: map[string]map[v1alpha1.Track]v1alpha1.LoadCounts{
		cl:              {v1alpha1.TrackCanary: {Success: 97, Errors: 3, Issued: 101}, v1alpha1.TrackStable: {Success: 900}},
		cl + "/canary":  {v1alpha1.TrackCanary: {Success: 10}},
		"serin/unknown": {v1alpha1.TrackCanary: {Success: 1000}},
	}}
	c := canary(srMetric())
	c.Spec.LoadReports = &v1alpha1.LoadReports{Enabled: true}
	a := &Analyzer{LoadReports: reports}
	res, err := a.Check(context.Background(), Input{Canary: c, Clusters: []string{cl, cl + "/canary"}, WindowStart: t0, Now: t0.Add(2 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	// 110 canary requests, 3 errors: 97.27 %.
	if res.Verdict != Hold || res.Message != "Halt podinfo.test advancement success rate 97.27% < 99%" {
		t.Fatalf("Check() = %s", res)
	}
	if res.Samples[0].Source != SourceLoadReports || res.Samples[0].Requests != 110 {
		t.Fatalf("sample = %+v", res.Samples[0])
	}
	if want := []string{cl + " 10:01:00..10:02:00", cl + "/canary 10:01:00..10:02:00"}; strings.Join(reports.calls, ",") != strings.Join(want, ",") {
		t.Fatalf("LoadReports calls = %v, want %v", reports.calls, want)
	}
}

func TestCheckFallsBackToLoadReports(t *testing.T) {
	p := newPromServer(t)
	p.Close() // Prometheus is down
	cl := "serin/test/podinfo/9898"
	reports := &lrs{counts: map[string]map[v1alpha1.Track]v1alpha1.LoadCounts{cl: {v1alpha1.TrackCanary: {Success: 1000}, v1alpha1.TrackStable: {Success: 9000}}}}
	a := &Analyzer{Prometheus: &prom.Factory{Default: prom.Config{Address: p.URL}, Egress: loopback}, LoadReports: reports}
	res, err := a.Check(context.Background(), Input{Canary: canary(srMetric()), Clusters: []string{cl}, WindowStart: t0, Now: t0.Add(time.Minute)})
	if err != nil || res.Verdict != Promote || res.Samples[0].Source != SourceLoadReports {
		t.Fatalf("Check() = %s (%+v), %v", res, res.Samples, err)
	}

	// Without load-report traffic the Prometheus failure is a failed check.
	reports.counts = nil
	res, err = a.Check(context.Background(), Input{Canary: canary(srMetric()), Clusters: []string{cl}, WindowStart: t0, Now: t0.Add(time.Minute)})
	if err != nil || res.Verdict != Hold || !res.FailedCheck || !strings.Contains(res.Message, "request-success-rate query failed") {
		t.Fatalf("Check() = %s, %v", res, err)
	}
}

func TestCheckComparative(t *testing.T) {
	cl := "serin/test/podinfo/9898"
	reports := &lrs{counts: map[string]map[v1alpha1.Track]v1alpha1.LoadCounts{cl: {v1alpha1.TrackCanary: {Success: 28, Errors: 12}, v1alpha1.TrackStable: {Success: 359, Errors: 1}}}}
	c := canary()
	c.Spec.LoadReports = &v1alpha1.LoadReports{Enabled: true}
	c.Spec.Judge = &v1alpha1.Judge{Kind: v1alpha1.JudgeComparative}
	a := &Analyzer{LoadReports: reports}
	in := Input{Canary: c, Clusters: []string{cl}, ReleaseStart: t0, WindowStart: t0.Add(3 * time.Minute), Now: t0.Add(3*time.Minute + 20*time.Second)}
	res, err := a.Check(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != Rollback || !strings.HasPrefix(res.Message, "Rolling back podinfo.test canary error rate 30.00% > stable 0.28% + 1pp") {
		t.Fatalf("Check() = %s", res)
	}
	// Release counts from the release start (and up to a checkpoint 30 s
	// back, on a ten-second boundary), step counts from the ACK.
	want := []string{cl + " 10:00:00..10:03:20", cl + " 10:00:00..10:02:50", cl + " 10:03:00..10:03:20"}
	if strings.Join(reports.calls, ",") != strings.Join(want, ",") {
		t.Fatalf("LoadReports calls = %v, want %v", reports.calls, want)
	}
	if cp := res.Checkpoint; cp == nil || !cp.Through.Time.Equal(t0.Add(2*time.Minute+50*time.Second)) || cp.Canary.Requests != 40 || cp.Stable.Errors != 1 {
		t.Fatalf("checkpoint %+v", res.Checkpoint)
	}
}

func TestCheckComparativePrometheusLatency(t *testing.T) {
	p := newPromServer(t)
	p.requests["podinfo-canary"], p.requests["podinfo"] = "20000", "180000"
	p.errors["podinfo-canary"], p.errors["podinfo"] = "20", "180"
	p.p99["podinfo-canary"], p.p99["podinfo"] = "400", "200"
	c := canary()
	c.Spec.Judge = &v1alpha1.Judge{Kind: v1alpha1.JudgeComparative, EarlyPromotion: true}
	a := &Analyzer{Prometheus: &prom.Factory{Default: prom.Config{Address: p.URL}, Egress: loopback}}
	res, err := a.Check(context.Background(), Input{Canary: c, WindowStart: t0, Now: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != Hold || !res.FailedCheck || !strings.Contains(res.Message, "canary p99 latency 400ms > stable 200ms + 20.00%") {
		t.Fatalf("Check() = %s", res)
	}
	p.mu.Lock()
	p.p99["podinfo-canary"] = "210"
	p.mu.Unlock()
	res, err = a.Check(context.Background(), Input{Canary: c, WindowStart: t0, Now: t0.Add(time.Minute)})
	if err != nil || res.Verdict != Promote || !res.Early {
		t.Fatalf("Check() = %s, %v; want an early promotion", res, err)
	}
}

func TestCheckErrors(t *testing.T) {
	a := &Analyzer{}
	for name, in := range map[string]Input{
		"no canary":      {WindowStart: t0, Now: t0.Add(time.Minute)},
		"no window":      {Canary: canary(), Now: t0},
		"window in past": {Canary: canary(), WindowStart: t0.Add(time.Minute), Now: t0},
		"unknown metric": {Canary: canary(v1alpha1.CanaryMetric{Name: "cpu"}), WindowStart: t0, Now: t0.Add(time.Minute)},
		"bad interval":   {Canary: canary(v1alpha1.CanaryMetric{Name: v1alpha1.MetricRequestSuccessRate, Interval: "soon"}), WindowStart: t0, Now: t0.Add(time.Minute)},
		"bad judge": {Canary: func() *v1alpha1.Canary {
			c := canary()
			c.Spec.Judge = &v1alpha1.Judge{FalseRollbackRate: "2"}
			return c
		}(), WindowStart: t0, Now: t0.Add(time.Minute)},
	} {
		if _, err := a.Check(context.Background(), in); err == nil {
			t.Errorf("%s: Check() accepted it", name)
		}
	}
	// No Prometheus configured: a built-in metric is a failed check, named.
	res, err := a.Check(context.Background(), Input{Canary: canary(durMetric()), WindowStart: t0, Now: t0.Add(time.Minute)})
	if err != nil || res.Verdict != Hold || !strings.Contains(res.Message, "request duration needs Prometheus: no Prometheus address configured") {
		t.Fatalf("Check() = %s, %v", res, err)
	}
}

func TestCheckUsesEffectiveSpec(t *testing.T) {
	p := newPromServer(t)
	p.requests["web-canary"], p.requests["web"] = "10", "90"
	c := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}} // created from annotations: empty spec
	eff := canary(srMetric()).Spec
	eff.TargetRef.Name = "web"
	a := &Analyzer{Prometheus: &prom.Factory{Default: prom.Config{Address: p.URL}, Egress: loopback}}
	res, err := a.Check(context.Background(), Input{Canary: c, Spec: &eff, WindowStart: t0, Now: t0.Add(time.Minute)})
	if err != nil || res.Verdict != Promote || len(res.Samples) != 2 {
		t.Fatalf("Check() = %s (%d samples), %v", res, len(res.Samples), err)
	}
	if got := res.Summary(); got != "request-success-rate/canary=100% (min 99%) pass n=10 from prometheus; request-success-rate/stable=100% info n=90 from prometheus" {
		t.Fatalf("Summary() = %q", got)
	}
}

// TestCheckInlineQuery: Flagger's metrics[].query runs against the
// Canary's metricsServer (without the default Prometheus's credentials),
// else against the default Prometheus; the built-in metrics follow
// metricsServer too.
func TestCheckInlineQuery(t *testing.T) {
	def, own := newPromServer(t), newPromServer(t)
	def.custom, own.custom = "1", "12"
	own.requests = map[string]string{"podinfo": "100", "podinfo-canary": "100"}
	a := &Analyzer{Prometheus: &prom.Factory{Default: prom.Config{Address: def.URL, BearerToken: "default-token"}, Egress: loopback}}
	m := v1alpha1.CanaryMetric{Name: "errors", Interval: "1m", ThresholdRange: rng(nil, ptr(10)),
		Query: `sum(rate(errors{w="{{ target }}"}[{{ interval }}]))`}
	c := canary(m)
	res, err := a.Check(context.Background(), Input{Canary: c, WindowStart: t0, Now: t0.Add(5 * time.Minute)})
	if err != nil || res.Verdict != Promote {
		t.Fatalf("Check() on the default Prometheus = %s, %v", res, err)
	}
	if q := def.seen(); len(q) != 1 || q[0] != `sum(rate(errors{w="podinfo-canary"}[1m]))` || def.auth[0] != "Bearer default-token" {
		t.Fatalf("default Prometheus saw %q with %q", q, def.auth)
	}

	c.Spec.MetricsServer = own.URL
	c.Spec.Analysis.Metrics = append(c.Spec.Analysis.Metrics, srMetric())
	res, err = a.Check(context.Background(), Input{Canary: c, WindowStart: t0, Now: t0.Add(5 * time.Minute)})
	if err != nil || res.Verdict != Hold || !strings.Contains(res.Message, "errors 12.00 > 10") {
		t.Fatalf("Check() on metricsServer = %s, %v", res, err)
	}
	if n := len(def.seen()); n != 1 {
		t.Fatalf("the default Prometheus got %d more queries", n-1)
	}
	if q := own.seen(); len(q) < 2 {
		t.Fatalf("metricsServer saw %q, want the inline query and the built-in's", q)
	}
	for _, auth := range own.auth {
		if auth != "" {
			t.Fatalf("metricsServer got credentials %q", auth)
		}
	}
}

// TestCheckGraphiteTemplate: a template of another provider type is
// rendered in its own dialect and judged like any other.
func TestCheckGraphiteTemplate(t *testing.T) {
	var mu sync.Mutex
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.URL.Query().Get("target")
		mu.Unlock()
		fmt.Fprint(w, `[{"target":"x","datapoints":[[3,1],[null,2]]}]`)
	}))
	t.Cleanup(srv.Close)
	tpl := &v1alpha1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "errors", Namespace: "test"},
		Spec: v1alpha1.MetricTemplateSpec{Provider: v1alpha1.MetricProvider{Type: v1alpha1.ProviderGraphite, Address: srv.URL},
			Query: `target=summarize(sumSeries(stats.{{ namespace }}.{{ target }}.errors),'{{ interval }}','sum')`}}
	a := &Analyzer{Providers: &providers.Factory{Egress: loopback}, Templates: templates{"test/errors": tpl}}
	m := v1alpha1.CanaryMetric{Name: "errors", Interval: "1m", ThresholdRange: rng(nil, ptr(2)),
		TemplateRef: &v1alpha1.CrossNamespaceObjectReference{Name: "errors"}}
	res, err := a.Check(context.Background(), Input{Canary: canary(m), WindowStart: t0, Now: t0.Add(5 * time.Minute)})
	if err != nil || res.Verdict != Hold || !strings.Contains(res.Message, "errors 3.00 > 2") {
		t.Fatalf("Check() = %s, %v", res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got != "summarize(sumSeries(stats.test.podinfo-canary.errors),'1min','sum')" {
		t.Fatalf("target = %q", got)
	}
}
