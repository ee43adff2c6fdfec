package prom

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func TestBuiltinQueries(t *testing.T) {
	istio := Workloads{Namespace: "test", Canary: "podinfo-canary", Stable: "podinfo"}
	linkerd := istio
	linkerd.Series = SeriesLinkerd
	const (
		istioSel   = `reporter="destination",destination_workload_namespace="test",destination_workload=~"podinfo|podinfo-canary"`
		linkerdSel = `direction="inbound",namespace="test",deployment=~"podinfo|podinfo-canary"`
	)
	tests := []struct {
		name  string
		query func(Workloads, time.Duration) string
		w     Workloads
		want  string
	}{
		{"istio requests", RequestsQuery, istio,
			`sum by (destination_workload) (increase(istio_requests_total{` + istioSel + `}[1m]))`},
		{"istio errors", ErrorsQuery, istio,
			`sum by (destination_workload) (increase(istio_requests_total{` + istioSel + `,response_code=~"5.."}[1m]) or ` +
				`increase(istio_requests_total{` + istioSel + `,response_code!~"5..",grpc_response_status=~"2|4|12|13|14|15"}[1m]))`},
		{"istio duration", DurationQuery, istio,
			`histogram_quantile(0.99, sum by (le, destination_workload) (rate(istio_request_duration_milliseconds_bucket{` + istioSel + `}[1m])))`},
		{"linkerd requests", RequestsQuery, linkerd,
			`sum by (deployment) (increase(response_total{` + linkerdSel + `}[1m]))`},
		{"linkerd errors", ErrorsQuery, linkerd,
			`sum by (deployment) (increase(response_total{` + linkerdSel + `,classification="failure"}[1m]))`},
		{"linkerd duration", DurationQuery, linkerd,
			`histogram_quantile(0.99, sum by (le, deployment) (rate(response_latency_ms_bucket{` + linkerdSel + `}[1m])))`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.query(tt.w, time.Minute+300*time.Millisecond); got != tt.want {
				t.Errorf("query =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestSeriesFor(t *testing.T) {
	for p, want := range map[v1alpha1.Provider]Series{
		"": SeriesIstio, "istio": SeriesIstio, "gatewayapi:v1": SeriesIstio, "kubernetes": SeriesIstio,
		"smi:v1alpha3": SeriesIstio, "linkerd": SeriesLinkerd,
	} {
		if got := SeriesFor(p); got != want {
			t.Errorf("SeriesFor(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestLinkerdQueriesEscapeNames(t *testing.T) {
	w := Workloads{Namespace: `ns"}`, Canary: "a.b-canary", Stable: "a.b", Series: SeriesLinkerd}
	q := ErrorsQuery(w, time.Minute)
	if !strings.Contains(q, `namespace="ns\"}"`) || !strings.Contains(q, `deployment=~"a\\.b|a\\.b-canary"`) {
		t.Fatalf("names not escaped: %s", q)
	}
}

func TestLinkerdCountsAndDuration(t *testing.T) {
	w := Workloads{Namespace: "test", Canary: "podinfo-canary", Stable: "podinfo", Series: SeriesLinkerd}
	srv := newFakeProm(t, func(q string) (int, string) {
		switch {
		case strings.HasPrefix(q, "histogram_quantile"):
			return http.StatusOK, vectorBy("deployment", [2]string{"podinfo-canary", "812"}, [2]string{"podinfo", "40"})
		case strings.Contains(q, `classification="failure"`):
			return http.StatusOK, vectorBy("deployment", [2]string{"podinfo-canary", "30"})
		case strings.Contains(q, "response_total{"):
			return http.StatusOK, vectorBy("deployment", [2]string{"podinfo-canary", "100"}, [2]string{"podinfo", "400"})
		}
		return http.StatusBadRequest, "unexpected query"
	})
	c, _ := New(Config{Address: srv.URL}, loopback)
	at := time.Unix(1700000000, 0)
	counts, err := c.RequestCounts(context.Background(), w, time.Minute, at)
	if err != nil {
		t.Fatal(err)
	}
	if want := (TrackCounts{Canary: Counts{Requests: 100, Errors: 30}, Stable: Counts{Requests: 400}}); counts != want {
		t.Errorf("RequestCounts() = %+v, want %+v", counts, want)
	}
	p99, err := c.RequestDuration(context.Background(), w, time.Minute, at)
	if err != nil {
		t.Fatal(err)
	}
	if want := (TrackValues{Canary: Value{V: 812, OK: true}, Stable: Value{V: 40, OK: true}}); p99 != want {
		t.Errorf("RequestDuration() = %+v, want %+v", p99, want)
	}
}

func TestWorkloadsUnknownSeries(t *testing.T) {
	c, _ := New(Config{Address: "http://127.0.0.1:1"}, loopback)
	w := Workloads{Namespace: "n", Canary: "a-canary", Stable: "a", Series: "consul"}
	if _, err := c.RequestCounts(context.Background(), w, time.Minute, time.Now()); err == nil || !strings.Contains(err.Error(), `"consul"`) {
		t.Fatalf("RequestCounts() error = %v, want one naming the unknown series", err)
	}
}

// vectorBy is an instant vector of one sample per value of label.
func vectorBy(label string, samples ...[2]string) string {
	var parts []string
	for _, s := range samples {
		parts = append(parts, fmt.Sprintf(`{"metric":{%q:%q},"value":[1700000000,%q]}`, label, s[0], s[1]))
	}
	return `{"resultType":"vector","result":[` + strings.Join(parts, ",") + `]}`
}
