package prom

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/egress"
)

// fakeProm is a real HTTP server speaking Prometheus' query API; answer
// maps a query to the JSON "data" object it returns (or an HTTP status).
type fakeProm struct {
	*httptest.Server
	mu      sync.Mutex
	queries []string
	auth    []string
	answer  func(q string) (status int, data string)
}

func newFakeProm(t *testing.T, answer func(q string) (int, string)) *fakeProm {
	t.Helper()
	f := &fakeProm{answer: answer}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		q := r.Form.Get("query")
		f.mu.Lock()
		f.queries = append(f.queries, q)
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		status, data := f.answer(q)
		w.Header().Set("Content-Type", "application/json")
		if status != http.StatusOK {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":%q}`, data)
			return
		}
		fmt.Fprintf(w, `{"status":"success","data":%s}`, data)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeProm) lastAuth() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.auth[len(f.auth)-1]
}

func scalar(v string) string {
	return fmt.Sprintf(`{"resultType":"scalar","result":[1700000000,%q]}`, v)
}

func vector(samples ...[2]string) string { return vectorBy("destination_workload", samples...) }

func TestQuery(t *testing.T) {
	at := time.Unix(1700000000, 0)
	tests := []struct {
		name    string
		status  int
		data    string
		want    Value
		wantErr string
	}{
		{name: "scalar", data: scalar("99.5"), want: Value{V: 99.5, OK: true}},
		{name: "scalar NaN is no data", data: scalar("NaN")},
		{name: "empty vector is no data", data: vector()},
		{name: "one sample", data: vector([2]string{"x", "42"}), want: Value{V: 42, OK: true}},
		{name: "NaN sample is no data", data: vector([2]string{"x", "NaN"})},
		{name: "zero is a value", data: vector([2]string{"x", "0"}), want: Value{V: 0, OK: true}},
		{name: "two series", data: vector([2]string{"a", "1"}, [2]string{"b", "2"}), wantErr: "2 series"},
		{name: "matrix", data: `{"resultType":"matrix","result":[]}`, wantErr: "matrix"},
		{name: "bad query", status: http.StatusBadRequest, data: "parse error", wantErr: "parse error"},
		{name: "server error", status: http.StatusInternalServerError, data: "boom", wantErr: "server error (5xx)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeProm(t, func(string) (int, string) {
				if tt.status != 0 {
					return tt.status, tt.data
				}
				return http.StatusOK, tt.data
			})
			c, err := New(Config{Address: srv.URL}, loopback)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Query(context.Background(), "up", at)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Query() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Query() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestQueryTimeoutFromContext(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	c, _ := New(Config{Address: srv.URL}, loopback)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Query(ctx, "up", time.Now())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Query() error = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("Query() ignored the context deadline")
	}
}

func TestRequestCounts(t *testing.T) {
	w := Workloads{Namespace: "test", Canary: "podinfo-canary", Stable: "podinfo"}
	srv := newFakeProm(t, func(q string) (int, string) {
		if strings.Contains(q, "response_code=~\"5..\"") {
			return http.StatusOK, vector([2]string{"podinfo-canary", "3"})
		}
		return http.StatusOK, vector([2]string{"podinfo-canary", "10"}, [2]string{"podinfo", "90.5"})
	})
	c, _ := New(Config{Address: srv.URL}, loopback)
	got, err := c.RequestCounts(context.Background(), w, time.Minute, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := TrackCounts{Canary: Counts{Requests: 10, Errors: 3}, Stable: Counts{Requests: 90.5}}
	if got != want {
		t.Fatalf("RequestCounts() = %+v, want %+v", got, want)
	}
	wantTotal := `sum by (destination_workload) (increase(istio_requests_total{reporter="destination",destination_workload_namespace="test",destination_workload=~"podinfo|podinfo-canary"}[1m]))`
	if srv.queries[0] != wantTotal {
		t.Errorf("total query =\n%s\nwant\n%s", srv.queries[0], wantTotal)
	}
	if !strings.Contains(srv.queries[1], `grpc_response_status=~"2|4|12|13|14|15"`) || !strings.Contains(srv.queries[1], `response_code!~"5.."`) {
		t.Errorf("error query misses gRPC server errors: %s", srv.queries[1])
	}
}

func TestRequestCountsNoSeries(t *testing.T) {
	srv := newFakeProm(t, func(string) (int, string) { return http.StatusOK, vector() })
	c, _ := New(Config{Address: srv.URL}, loopback)
	got, err := c.RequestCounts(context.Background(), Workloads{Namespace: "n", Canary: "a-canary", Stable: "a"}, time.Minute, time.Now())
	if err != nil || got != (TrackCounts{}) {
		t.Fatalf("RequestCounts() = %+v, %v; want zero counts", got, err)
	}
}

func TestRequestDuration(t *testing.T) {
	srv := newFakeProm(t, func(q string) (int, string) {
		if !strings.HasPrefix(q, "histogram_quantile(0.99,") {
			return http.StatusBadRequest, "unexpected query"
		}
		return http.StatusOK, vector([2]string{"web-canary", "1515"}, [2]string{"web", "NaN"})
	})
	c, _ := New(Config{Address: srv.URL}, loopback)
	got, err := c.RequestDuration(context.Background(), Workloads{Namespace: "n", Canary: "web-canary", Stable: "web"}, 90*time.Second, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got.Canary != (Value{V: 1515, OK: true}) || got.Stable.OK {
		t.Fatalf("RequestDuration() = %+v", got)
	}
	if !strings.Contains(srv.queries[0], "[90s]") {
		t.Errorf("window not in query: %s", srv.queries[0])
	}
}

func TestBuiltinQueriesEscapeNames(t *testing.T) {
	w := Workloads{Namespace: `ns"}`, Canary: "a.b-canary", Stable: "a.b"}
	q := RequestsQuery(w, time.Minute)
	if !strings.Contains(q, `destination_workload_namespace="ns\"}"`) || !strings.Contains(q, `destination_workload=~"a\\.b|a\\.b-canary"`) {
		t.Fatalf("names not escaped: %s", q)
	}
}

// loopback is the egress policy of the tests: their servers listen on
// 127.0.0.1, which an admin has to allow.
var loopback, _ = egress.ParseAllow([]string{"127.0.0.0/8"})

type secrets map[string]ProviderSecret

func (s secrets) ProviderSecret(_ context.Context, ns, name string) (ProviderSecret, error) {
	d, ok := s[ns+"/"+name]
	if !ok {
		return ProviderSecret{}, fmt.Errorf("secret %s/%s not found", ns, name)
	}
	return d, nil
}

// bound is a Secret with data that allows addresses by annotation.
func bound(data map[string][]byte, addresses ...string) ProviderSecret {
	return ProviderSecret{Data: data, Annotations: map[string]string{AnnotationAllowedAddresses: strings.Join(addresses, ", ")}}
}

func TestFactoryAuth(t *testing.T) {
	srv := newFakeProm(t, func(string) (int, string) { return http.StatusOK, scalar("1") })
	f := &Factory{Default: Config{Address: srv.URL}, Egress: loopback, Secrets: secrets{
		"mon/basic":   bound(map[string][]byte{SecretUsername: []byte("u"), SecretPassword: []byte("p")}, "http://elsewhere.test", srv.URL+"/"),
		"mon/bearer":  bound(map[string][]byte{SecretToken: []byte("tok")}, srv.URL),
		"mon/empty":   bound(map[string][]byte{"other": []byte("x")}, srv.URL),
		"mon/keyed":   {Data: map[string][]byte{SecretToken: []byte("k"), SecretAddress: []byte(srv.URL)}},
		"mon/unbound": {Data: map[string][]byte{SecretToken: []byte("s3cret")}},
		"mon/other":   bound(map[string][]byte{SecretToken: []byte("s3cret")}, "https://prometheus.monitoring:9090"),
		"team-b/tok":  bound(map[string][]byte{SecretToken: []byte("s3cret")}, srv.URL),
	}}
	ctx := context.Background()
	tests := []struct {
		name     string
		provider *v1alpha1.MetricProvider
		wantAuth string
		wantErr  string
	}{
		{name: "default, no auth", provider: nil},
		{name: "basic", provider: &v1alpha1.MetricProvider{Address: srv.URL, SecretRef: &corev1.LocalObjectReference{Name: "basic"}}, wantAuth: "Basic dTpw"},
		{name: "bearer on default address", provider: &v1alpha1.MetricProvider{SecretRef: &corev1.LocalObjectReference{Name: "bearer"}}, wantAuth: "Bearer tok"},
		{name: "secret without keys", provider: &v1alpha1.MetricProvider{SecretRef: &corev1.LocalObjectReference{Name: "empty"}}, wantErr: "neither"},
		{name: "missing secret", provider: &v1alpha1.MetricProvider{SecretRef: &corev1.LocalObjectReference{Name: "nope"}}, wantErr: "not found"},
		{name: "address from the secret", provider: &v1alpha1.MetricProvider{Address: "", SecretRef: &corev1.LocalObjectReference{Name: "keyed"}}, wantAuth: "Bearer k"},
		{name: "secret names no address", provider: &v1alpha1.MetricProvider{Address: srv.URL, SecretRef: &corev1.LocalObjectReference{Name: "unbound"}}, wantErr: "names no address"},
		{name: "secret names another address", provider: &v1alpha1.MetricProvider{Address: srv.URL, SecretRef: &corev1.LocalObjectReference{Name: "other"}}, wantErr: "does not allow"},
		{name: "another namespace's secret", provider: &v1alpha1.MetricProvider{Address: srv.URL, SecretRef: &corev1.LocalObjectReference{Name: "tok"}}, wantErr: "not found"},
		{name: "unsupported type", provider: &v1alpha1.MetricProvider{Type: "datadog"}, wantErr: "not supported"},
		{name: "bad address", provider: &v1alpha1.MetricProvider{Address: "ftp://x"}, wantErr: "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := f.Client(ctx, "mon", tt.provider)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Client() error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("Client() error holds the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Query(ctx, "up", time.Now()); err != nil {
				t.Fatal(err)
			}
			if got := srv.lastAuth(); got != tt.wantAuth {
				t.Fatalf("Authorization = %q, want %q", got, tt.wantAuth)
			}
		})
	}
	var empty Factory
	if _, err := empty.Client(ctx, "x", nil); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("Client() without address error = %v, want ErrNoAddress", err)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	target := newFakeProm(t, func(string) (int, string) { return http.StatusOK, scalar("1") })
	redirect := httptest.NewServer(http.RedirectHandler(target.URL+"/api/v1/query", http.StatusTemporaryRedirect))
	defer redirect.Close()
	c, _ := New(Config{Address: redirect.URL, BearerToken: "secret"}, loopback)
	if _, err := c.Query(context.Background(), "up", time.Now()); err == nil {
		t.Fatal("Query() followed a redirect")
	}
	if len(target.queries) != 0 {
		t.Fatal("credentials were sent to the redirect target")
	}
}

func TestBind(t *testing.T) {
	for _, tt := range []struct {
		name    string
		sec     ProviderSecret
		address string
		want    error
	}{
		{name: "nothing named", sec: ProviderSecret{Data: map[string][]byte{SecretToken: []byte("t")}}, address: "http://p:9090", want: ErrSecretUnbound},
		{name: "key", sec: ProviderSecret{Data: map[string][]byte{SecretAddress: []byte("http://p:9090\n")}}, address: "http://p:9090"},
		{name: "annotation, default port", sec: bound(nil, "https://p.monitoring"), address: "https://P.Monitoring:443/"},
		{name: "annotation, second entry", sec: bound(nil, "http://a", "http://p:9090"), address: "http://p:9090"},
		{name: "other host", sec: bound(nil, "http://p:9090"), address: "http://evil.test:9090", want: ErrSecretElsewhere},
		{name: "other port", sec: bound(nil, "http://p:9090"), address: "http://p:9091", want: ErrSecretElsewhere},
		{name: "other scheme", sec: bound(nil, "https://p:9090"), address: "http://p:9090", want: ErrSecretElsewhere},
		{name: "userinfo does not change the host", sec: bound(nil, "http://p:9090"), address: "http://p:9090@evil.test:9090", want: ErrSecretElsewhere},
		{name: "below the path", sec: bound(nil, "http://gw/team-a"), address: "http://gw/team-a/prom"},
		{name: "outside the path", sec: bound(nil, "http://gw/team-a"), address: "http://gw/team-ab", want: ErrSecretElsewhere},
		{name: "not a URL", sec: bound(nil, "p:9090"), address: "http://p:9090", want: ErrSecretElsewhere},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := Bind(tt.sec, tt.address); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Bind() = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestUnboundSecretNotSent: a template whose Secret does not name its
// address gets no client, and its server never sees a request.
func TestUnboundSecretNotSent(t *testing.T) {
	srv := newFakeProm(t, func(string) (int, string) { return http.StatusOK, scalar("1") })
	f := &Factory{Egress: loopback, Secrets: secrets{
		"team-a/prom": bound(map[string][]byte{SecretToken: []byte("s3cret")}, "https://prometheus.monitoring:9090"),
	}}
	p := &v1alpha1.MetricProvider{Address: srv.URL, SecretRef: &corev1.LocalObjectReference{Name: "prom"}}
	if _, err := f.Client(context.Background(), "team-a", p); !errors.Is(err, ErrSecretElsewhere) {
		t.Fatalf("Client() = %v, want ErrSecretElsewhere", err)
	}
	if len(srv.queries) != 0 {
		t.Fatal("the server was called")
	}
}

// TestEgressRefused: a provider at a refused address is never reached,
// and the error says so by class.
func TestEgressRefused(t *testing.T) {
	srv := newFakeProm(t, func(string) (int, string) { return http.StatusOK, scalar("1") })
	for _, address := range []string{"http://169.254.169.254/", srv.URL} {
		c, err := New(Config{Address: address}, egress.Policy{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Query(context.Background(), "up", time.Now())
		if !errors.Is(err, egress.ErrRefused) || strings.Contains(err.Error(), "dial") {
			t.Fatalf("Query(%s) = %v, want refused by class", address, err)
		}
	}
	if len(srv.queries) != 0 {
		t.Fatal("a refused provider was reached")
	}
}

// TestErrorsHideAnswers: what a host that is not a Prometheus answered
// never shows in errors.
func TestErrorsHideAnswers(t *testing.T) {
	for code, want := range map[int]string{http.StatusForbidden: "rejected (4xx)", http.StatusBadGateway: "server error (5xx)", http.StatusOK: "not a Prometheus API answer"} {
		srv := newFakeProm(t, func(string) (int, string) { return code, "<html>internal s3cret page</html>" })
		c, _ := New(Config{Address: srv.URL + "/?token=s3cret"}, loopback)
		_, err := c.Query(context.Background(), "up", time.Now())
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("answer %d: error %v, want %q without the body or the query string", code, err, want)
		}
	}
}

// TestFactoryHeaders: provider.headers go with every query; the Secret's
// credentials win over an Authorization header of the template.
func TestFactoryHeaders(t *testing.T) {
	var mu sync.Mutex
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		fmt.Fprintf(w, `{"status":"success","data":%s}`, scalar("1"))
	}))
	t.Cleanup(srv.Close)
	f := &Factory{Egress: loopback, Secrets: secrets{"mon/tok": bound(map[string][]byte{SecretToken: []byte("tok")}, srv.URL)}}
	ctx := context.Background()
	headers := map[string][]string{"X-Scope-OrgID": {"tenant-a"}, "Authorization": {"Bearer from-template"}}
	for _, tc := range []struct {
		secret   *corev1.LocalObjectReference
		wantAuth string
	}{{nil, "Bearer from-template"}, {&corev1.LocalObjectReference{Name: "tok"}, "Bearer tok"}} {
		c, err := f.Client(ctx, "mon", &v1alpha1.MetricProvider{Address: srv.URL, Headers: headers, SecretRef: tc.secret})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Query(ctx, "up", time.Now()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if got.Get("X-Scope-OrgID") != "tenant-a" || got.Get("Authorization") != tc.wantAuth {
			t.Errorf("headers = %v, want X-Scope-OrgID tenant-a and Authorization %q", got, tc.wantAuth)
		}
		mu.Unlock()
	}
}
