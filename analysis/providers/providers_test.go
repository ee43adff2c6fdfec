package providers

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/serin-dev/serin/analysis/prom"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/egress"
)

var loopback, _ = egress.ParseAllow([]string{"127.0.0.0/8"})

// end is the end of every test's window.
var end = time.Unix(1_700_000_000, 0)

type secrets map[string]prom.ProviderSecret

func (s secrets) ProviderSecret(_ context.Context, ns, name string) (prom.ProviderSecret, error) {
	d, ok := s[ns+"/"+name]
	if !ok {
		return prom.ProviderSecret{}, fmt.Errorf("secret %s/%s not found", ns, name)
	}
	return d, nil
}

func bound(data map[string]string, addresses ...string) prom.ProviderSecret {
	b := map[string][]byte{}
	for k, v := range data {
		b[k] = []byte(v)
	}
	return prom.ProviderSecret{Data: b, Annotations: map[string]string{prom.AnnotationAllowedAddresses: strings.Join(addresses, ",")}}
}

// seen is one request as the fake API received it.
type seen struct {
	Method, Path string
	Query        url.Values
	Header       http.Header
	Body         []byte
}

// fakeAPI is a real HTTP server that records requests and answers with
// what answer returns.
type fakeAPI struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []seen
	answer func(seen) (status int, contentType, body string)
}

func newFakeAPI(t *testing.T, answer func(seen) (int, string, string)) *fakeAPI {
	t.Helper()
	f := &fakeAPI{answer: answer}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body}
		f.mu.Lock()
		f.reqs = append(f.reqs, s)
		answer := f.answer
		f.mu.Unlock()
		status, ct, out := answer(s)
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		io.WriteString(w, out)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) last(t *testing.T) seen {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("the API received no request")
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *fakeAPI) set(status int, ct, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = func(seen) (int, string, string) { return status, ct, body }
}

func jsonAnswer(body string) func(seen) (int, string, string) {
	return func(seen) (int, string, string) { return http.StatusOK, "application/json", body }
}

func secretRef(name string) *corev1.LocalObjectReference {
	return &corev1.LocalObjectReference{Name: name}
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// check runs one query and compares value or error.
func check(t *testing.T, f *Factory, p *v1alpha1.MetricProvider, query string, want float64, wantErr string) {
	t.Helper()
	got, err := f.Query(context.Background(), "apps", p, Request{Query: query, Window: 5 * time.Minute, End: end})
	switch {
	case wantErr == "" && err != nil:
		t.Fatalf("Query() error = %v", err)
	case wantErr == "no data" && !errors.Is(err, ErrNoData):
		t.Fatalf("Query() = %v, %v; want ErrNoData", got, err)
	case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
		t.Fatalf("Query() = %v, %v; want an error with %q", got, err, wantErr)
	case wantErr == "" && got != want:
		t.Fatalf("Query() = %v, want %v", got, want)
	}
}

func TestGraphite(t *testing.T) {
	api := newFakeAPI(t, jsonAnswer(`[{"target":"a","datapoints":[[1.5,1699999700],[null,1699999760]]},`+
		`{"target":"b","datapoints":[[null,1699999700],[2.5,1699999760],[null,1699999820]]}]`))
	f := &Factory{Egress: loopback, Secrets: secrets{"apps/graphite": bound(map[string]string{"username": "u", "password": "pw"}, api.URL+"/graphite")}}
	p := &v1alpha1.MetricProvider{Type: v1alpha1.ProviderGraphite, Address: api.URL + "/graphite", SecretRef: secretRef("graphite"),
		Headers: map[string][]string{"X-Org": {"7"}}}
	check(t, f, p, "target=sumSeries(\n  stats.podinfo.errors\n)", 2.5, "")
	r := api.last(t)
	if r.Method != http.MethodGet || r.Path != "/graphite/render" {
		t.Errorf("request %s %s, want GET /graphite/render", r.Method, r.Path)
	}
	want := url.Values{"target": {"sumSeries( stats.podinfo.errors )"}, "format": {"json"}, "from": {"-300s"}, "until": {"1700000000"}}
	if r.Query.Encode() != want.Encode() {
		t.Errorf("query = %v, want %v", r.Query, want)
	}
	if r.Header.Get("Authorization") != basic("u", "pw") || r.Header.Get("X-Org") != "7" {
		t.Errorf("headers = %v", r.Header)
	}
	// The template's own window wins.
	check(t, f, p, "target=x&from=-10min", 2.5, "")
	if q := api.last(t).Query; q.Get("from") != "-10min" || q.Has("until") {
		t.Errorf("query = %v, want the template's from and no until", q)
	}
	api.set(http.StatusOK, "application/json", `[{"target":"a","datapoints":[[null,1699999700]]}]`)
	check(t, f, p, "target=x", 0, "no data")
	api.set(http.StatusOK, "application/json", `[]`)
	check(t, f, p, "target=x", 0, "no data")
	check(t, f, p, "from=-5min", 0, "render API query string with a target")
	api.set(http.StatusBadRequest, "text/html", `<html>secret internals</html>`)
	check(t, f, p, "target=x", 0, "rejected (4xx)")
}

func TestInfluxDBFlux(t *testing.T) {
	api := newFakeAPI(t, func(seen) (int, string, string) {
		return http.StatusOK, "text/csv", ",result,table,_start,_stop,_time,_value,_field\r\n" +
			",_result,0,2023-11-14T22:08:20Z,2023-11-14T22:13:20Z,2023-11-14T22:13:00Z,0.25,errors\r\n\r\n"
	})
	f := &Factory{Egress: loopback, Secrets: secrets{"apps/influx": bound(map[string]string{"token": "t0ken-abc", "org": "acme"}, api.URL)}}
	p := &v1alpha1.MetricProvider{Type: v1alpha1.ProviderInfluxDB, Address: api.URL, SecretRef: secretRef("influx")}
	query := `from(bucket: "k8s") |> range(start: -5m) |> filter(fn: (r) => r["app"] == "podinfo") |> mean()`
	check(t, f, p, query, 0.25, "")
	r := api.last(t)
	if r.Method != http.MethodPost || r.Path != "/api/v2/query" || r.Query.Get("org") != "acme" {
		t.Errorf("request %s %s?%s, want POST /api/v2/query?org=acme", r.Method, r.Path, r.Query.Encode())
	}
	if r.Header.Get("Authorization") != "Token t0ken-abc" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers = %v", r.Header)
	}
	if !strings.Contains(string(r.Body), `"type":"flux"`) || !strings.Contains(string(r.Body), `"query":"from(bucket: \"k8s\")`) {
		t.Errorf("body = %s", r.Body)
	}
	api.set(http.StatusOK, "text/csv", "\r\n")
	check(t, f, p, query, 0, "no data")
	api.set(http.StatusOK, "text/csv", ",result,table,_value\r\n,_result,0,\r\n")
	check(t, f, p, query, 0, "no data")
	api.set(http.StatusBadRequest, "application/json", `{"code":"invalid","message":"compilation failed: undefined identifier t0ken-abc"}`)
	check(t, f, p, query, 0, "compilation failed: undefined identifier [redacted]")
	// Flux needs the org.
	f.Secrets = secrets{"apps/influx": bound(map[string]string{"token": "t"}, api.URL)}
	check(t, f, p, query, 0, `no "org"`)
}

func TestInfluxDBInfluxQL(t *testing.T) {
	api := newFakeAPI(t, jsonAnswer(`{"results":[{"statement_id":0,"series":[{"name":"requests","columns":["time","mean"],"values":[[1699999700,42.5]]}]}]}`))
	f := &Factory{Egress: loopback, Secrets: secrets{"apps/influx": bound(map[string]string{"username": "u", "password": "pw"}, api.URL)}}
	p := &v1alpha1.MetricProvider{Type: v1alpha1.ProviderInfluxDB, Address: api.URL + "?db=telegraf", SecretRef: secretRef("influx")}
	query := `SELECT mean("latency") FROM "requests" WHERE "app" = 'podinfo' AND time > now() - 5m`
	check(t, f, p, query, 42.5, "")
	r := api.last(t)
	if r.Method != http.MethodGet || r.Path != "/query" || r.Query.Get("q") != query || r.Query.Get("db") != "telegraf" || r.Query.Get("epoch") != "s" {
		t.Errorf("request %s %s?%s", r.Method, r.Path, r.Query.Encode())
	}
	if r.Header.Get("Authorization") != basic("u", "pw") {
		t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
	}
	api.set(http.StatusOK, "application/json", `{"results":[{"statement_id":0}]}`)
	check(t, f, p, query, 0, "no data")
	api.set(http.StatusOK, "application/json", `{"results":[{"statement_id":0,"series":[{"columns":["time","mean"],"values":[[1,null]]}]}]}`)
	check(t, f, p, query, 0, "no data")
	api.set(http.StatusOK, "application/json", `{"results":[{"statement_id":0,"error":"database not found: telegraf"}]}`)
	check(t, f, p, query, 0, "database not found")
	for q, want := range map[string]bool{"select 1": true, "  SHOW DATABASES": true, `from(bucket:"b")`: false, "import \"math\"": false} {
		if InfluxQL(q) != want {
			t.Errorf("InfluxQL(%q) = %v, want %v", q, !want, want)
		}
	}
}

func TestDatadog(t *testing.T) {
	api := newFakeAPI(t, jsonAnswer(`{"status":"ok","series":[{"pointlist":[[1699999700000,null],[1699999760000,99.5],[1699999820000,80]]},{"pointlist":[[1,1]]}]}`))
	keys := map[string]string{DatadogAPIKey: "api-key-123", DatadogApplicationKey: "app-key-456"}
	f := &Factory{Egress: loopback, Secrets: secrets{"apps/dd": bound(keys, api.URL)}}
	p := &v1alpha1.MetricProvider{Type: v1alpha1.ProviderDatadog, Address: api.URL, SecretRef: secretRef("dd")}
	query := `sum:istio.mesh.request.count{destination_workload:podinfo}.as_count()`
	check(t, f, p, query, 99.5, "")
	r := api.last(t)
	want := url.Values{"query": {query}, "from": {"1699999700"}, "to": {"1700000000"}}
	if r.Method != http.MethodGet || r.Path != "/api/v1/query" || r.Query.Encode() != want.Encode() {
		t.Errorf("request %s %s?%s", r.Method, r.Path, r.Query.Encode())
	}
	if r.Header.Get("DD-API-KEY") != "api-key-123" || r.Header.Get("DD-APPLICATION-KEY") != "app-key-456" {
		t.Errorf("headers = %v", r.Header)
	}
	api.set(http.StatusOK, "application/json", `{"status":"ok","series":[]}`)
	check(t, f, p, query, 0, "no data")
	api.set(http.StatusForbidden, "application/json", `{"errors":["Forbidden: key api-key-123 is not valid"]}`)
	check(t, f, p, query, 0, "rejected (4xx): Forbidden: key [redacted] is not valid")
	f.Secrets = secrets{"apps/dd": bound(map[string]string{DatadogAPIKey: "k"}, api.URL)}
	check(t, f, p, query, 0, `no "datadog_application_key"`)
	check(t, f, &v1alpha1.MetricProvider{Type: v1alpha1.ProviderDatadog}, query, 0, "needs a spec.provider.secretRef")
}

func TestNewRelic(t *testing.T) {
	api := newFakeAPI(t, jsonAnswer(`{"results":[{"result":1.25}],"metadata":{}}`))
	keys := map[string]string{NewRelicAccountID: "100200", NewRelicQueryKey: "NRIQ-query-key"}
	f := &Factory{Egress: loopback, Secrets: secrets{"apps/nr": bound(keys, api.URL)}}
	p := &v1alpha1.MetricProvider{Type: v1alpha1.ProviderNewRelic, Address: api.URL, SecretRef: secretRef("nr")}
	query := `SELECT filter(sum(requests), WHERE status >= '500') / sum(requests) * 100 AS result FROM Metric WHERE app = 'podinfo'`
	check(t, f, p, query, 1.25, "")
	r := api.last(t)
	if r.Method != http.MethodGet || r.Path != "/v1/accounts/100200/query" || r.Query.Get("nrql") != query+" SINCE 300 seconds ago" {
		t.Errorf("request %s %s?%s", r.Method, r.Path, r.Query.Encode())
	}
	if r.Header.Get("X-Query-Key") != "NRIQ-query-key" {
		t.Errorf("headers = %v", r.Header)
	}
	for body, want := range map[string]float64{`{"results":[{"average":3.5}]}`: 3.5, `{"results":[{"percentile":{"99":120}}]}`: 120} {
		api.set(http.StatusOK, "application/json", body)
		check(t, f, p, "SELECT x FROM y", want, "")
	}
	api.set(http.StatusOK, "application/json", `{"results":[{"result":null}]}`)
	check(t, f, p, query, 0, "no data")
	api.set(http.StatusOK, "application/json", `{"results":[]}`)
	check(t, f, p, query, 0, "no data")
	api.set(http.StatusOK, "application/json", `{"results":[{"a":1,"b":2}]}`)
	check(t, f, p, query, 0, "AS result")
}

// TestCredentialsGoOnlyWhereAllowed: a Secret's credentials go to an
// address it names, or to the vendor's own API; nowhere else, and the
// API never hears of the query.
func TestCredentialsGoOnlyWhereAllowed(t *testing.T) {
	api := newFakeAPI(t, jsonAnswer(`[]`))
	f := &Factory{Egress: loopback, Secrets: secrets{
		"apps/unbound": {Data: map[string][]byte{"username": []byte("u"), "password": []byte("s3cret")}},
		"apps/other":   bound(map[string]string{"username": "u", "password": "s3cret"}, "https://graphite.example"),
	}}
	for _, name := range []string{"unbound", "other"} {
		p := &v1alpha1.MetricProvider{Type: v1alpha1.ProviderGraphite, Address: api.URL, SecretRef: secretRef(name)}
		_, err := f.Query(context.Background(), "apps", p, Request{Query: "target=x", Window: time.Minute, End: end})
		if !errors.Is(err, prom.ErrSecretUnbound) && !errors.Is(err, prom.ErrSecretElsewhere) {
			t.Errorf("%s: error = %v, want the Secret's refusal", name, err)
		}
	}
	if n := api.count(); n != 0 {
		t.Fatalf("the API received %d requests", n)
	}
	for raw, want := range map[string]bool{DatadogAddress: true, "https://api.datadoghq.eu/": true, "http://api.datadoghq.com": false,
		"https://api.datadoghq.com:8443": false, "https://evil.example": false, "https://user@api.datadoghq.com": false} {
		if vendorAPI(v1alpha1.ProviderDatadog, raw) != want {
			t.Errorf("vendorAPI(datadog, %q) = %v", raw, !want)
		}
	}
	if vendorAPI(v1alpha1.ProviderGraphite, DatadogAddress) {
		t.Error("a Datadog host is a Graphite vendor API")
	}
}

func TestEgressRefused(t *testing.T) {
	api := newFakeAPI(t, jsonAnswer(`[]`))
	f := &Factory{} // the default policy refuses loopback
	for _, typ := range []v1alpha1.ProviderType{v1alpha1.ProviderGraphite, v1alpha1.ProviderInfluxDB} {
		p := &v1alpha1.MetricProvider{Type: typ, Address: api.URL}
		_, err := f.Query(context.Background(), "apps", p, Request{Query: "target=x", Window: time.Minute, End: end})
		if !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), string(typ)+" "+api.URL) {
			t.Errorf("%s: error = %v, want a refusal naming the provider", typ, err)
		}
	}
	if n := api.count(); n != 0 {
		t.Fatalf("the API received %d requests", n)
	}
}

func TestPrometheus(t *testing.T) {
	api := newFakeAPI(t, jsonAnswer(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	f := &Factory{Prometheus: &prom.Factory{Default: prom.Config{Address: api.URL}, Egress: loopback}}
	check(t, f, nil, "up", 0, "no data")
	api.set(http.StatusOK, "application/json", `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"0.5"]}}`)
	check(t, f, &v1alpha1.MetricProvider{Type: v1alpha1.ProviderPrometheus}, "up", 0.5, "")
	if q := api.last(t); q.Query.Get("query") != "up" && !strings.Contains(string(q.Body), "query=up") {
		t.Errorf("request = %+v", q)
	}
	check(t, &Factory{}, nil, "up", 0, "no Prometheus address")
	check(t, f, &v1alpha1.MetricProvider{Type: "stackdriver"}, "x", 0, `"stackdriver" is not supported`)
}

func TestGraphiteDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Minute: "1min", 5 * time.Minute: "5min", 90 * time.Second: "90s",
		2 * time.Hour: "2h", 48 * time.Hour: "2d", 1500 * time.Millisecond: "2s", 0: "1s"} {
		if got := GraphiteDuration(d); got != want {
			t.Errorf("GraphiteDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestInsecureSkipVerify: a self-signed provider is refused unless the
// template skips verification.
func TestInsecureSkipVerify(t *testing.T) {
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `[{"target":"x","datapoints":[[1,1]]}]`)
	}))
	t.Cleanup(api.Close)
	f := &Factory{Egress: loopback}
	p := &v1alpha1.MetricProvider{Type: v1alpha1.ProviderGraphite, Address: api.URL}
	check(t, f, p, "target=x", 0, "connection failed")
	p.InsecureSkipVerify = true
	check(t, f, p, "target=x", 1, "")
}
