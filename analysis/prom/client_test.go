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

func vector(samples ...[2]string) string {
	var parts []string
	for _, s := range samples {
		parts = append(parts, fmt.Sprintf(`{"metric":{"destination_workload":%q},"value":[1700000000,%q]}`, s[0], s[1]))
	}
	return `{"resultType":"vector","result":[` + strings.Join(parts, ",") + `]}`
}

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
		{name: "server error", status: http.StatusInternalServerError, data: "boom", wantErr: "500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeProm(t, func(string) (int, string) {
				if tt.status != 0 {
					return tt.status, tt.data
				}
				return http.StatusOK, tt.data
			})
			c, err := New(Config{Address: srv.URL})
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
	c, _ := New(Config{Address: srv.URL})
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
	c, _ := New(Config{Address: srv.URL})
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
	c, _ := New(Config{Address: srv.URL})
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
	c, _ := New(Config{Address: srv.URL})
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

type secrets map[string]map[string][]byte

func (s secrets) Secret(_ context.Context, ns, name string) (map[string][]byte, error) {
	d, ok := s[ns+"/"+name]
	if !ok {
		return nil, fmt.Errorf("secret %s/%s not found", ns, name)
	}
	return d, nil
}

func TestFactoryAuth(t *testing.T) {
	srv := newFakeProm(t, func(string) (int, string) { return http.StatusOK, scalar("1") })
	f := &Factory{Default: Config{Address: srv.URL}, Secrets: secrets{
		"mon/basic":  {SecretUsername: []byte("u"), SecretPassword: []byte("p")},
		"mon/bearer": {SecretToken: []byte("tok")},
		"mon/empty":  {"other": []byte("x")},
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
	c, _ := New(Config{Address: redirect.URL, BearerToken: "secret"})
	if _, err := c.Query(context.Background(), "up", time.Now()); err == nil {
		t.Fatal("Query() followed a redirect")
	}
	if len(target.queries) != 0 {
		t.Fatal("credentials were sent to the redirect target")
	}
}
