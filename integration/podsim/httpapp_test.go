package podsim

import (
	"context"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHTTPEndpoints(t *testing.T) {
	_, addrs := servePod(t, testPod(withEnv(EnvVersion, "v2", EnvMessage, "hi")), nil)
	base := "http://" + addrs["http"]

	res := doHTTP(t, http.MethodGet, base+"/", nil, nil)
	info := decodeJSON[InfoResponse](t, res.body)
	wantInfo := InfoResponse{Hostname: "podinfo-7d9f8c6b5-x2x4z", Version: "v2", Message: "hi", Namespace: "test", Workload: "podinfo", PodIP: "127.1.0.5"}
	if res.code != 200 || info != wantInfo {
		t.Errorf("GET / = %d %+v, want 200 %+v", res.code, info, wantInfo)
	}
	for k, v := range map[string]string{HeaderPod: "podinfo-7d9f8c6b5-x2x4z", HeaderVersion: "v2", HeaderNamespace: "test", HeaderWorkload: "podinfo"} {
		if got := res.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}

	if v := decodeJSON[map[string]string](t, doHTTP(t, http.MethodGet, base+"/version", nil, nil).body); v["version"] != "v2" {
		t.Errorf("/version = %v", v)
	}
	for path, want := range map[string]int{
		"/status/200": 200, "/status/418": 418, "/status/503": 503, "/status/99": 400, "/status/abc": 400,
		"/healthz": 200, "/readyz": 200, "/nope": 404, "/delay/x": 400, "/delay/-1": 400,
	} {
		if got := doHTTP(t, http.MethodGet, base+path, nil, nil).code; got != want {
			t.Errorf("GET %s = %d, want %d", path, got, want)
		}
	}
	// /status/{code} answers any method.
	if got := doHTTP(t, http.MethodPost, base+"/status/201", nil, nil).code; got != 201 {
		t.Errorf("POST /status/201 = %d", got)
	}

	start := time.Now()
	res = doHTTP(t, http.MethodGet, base+"/delay/0.05", nil, nil)
	if took := time.Since(start); res.code != 200 || took < 50*time.Millisecond {
		t.Errorf("/delay/0.05 = %d after %v, want 200 after >= 50ms", res.code, took)
	}

	res = doHTTP(t, http.MethodGet, base+"/headers", nil, map[string]string{"X-Test": "abc", "Host": "podinfo.test"})
	h := decodeJSON[map[string][]string](t, res.body)
	if strings.Join(h["X-Test"], ",") != "abc" || strings.Join(h["Host"], ",") != "podinfo.test" {
		t.Errorf("/headers = %v", h)
	}

	res = doHTTP(t, http.MethodPost, base+"/echo", strings.NewReader("ping"), map[string]string{"Content-Type": "text/plain"})
	if res.code != 200 || string(res.body) != "ping" || res.header.Get("Content-Type") != "text/plain" {
		t.Errorf("POST /echo = %d %q %q", res.code, res.body, res.header.Get("Content-Type"))
	}
	if got := doHTTP(t, http.MethodGet, base+"/echo", nil, nil).code; got != http.StatusMethodNotAllowed {
		t.Errorf("GET /echo = %d, want 405", got)
	}

	res = doHTTP(t, http.MethodPost, base+"/token", strings.NewReader("test"), nil)
	if tok := decodeJSON[map[string]string](t, res.body); res.code != 200 || tok["token"] == "" || tok["expires_at"] == "" {
		t.Errorf("POST /token = %d %q", res.code, res.body)
	}

	// Cleartext HTTP/2 with prior knowledge (what Envoy and h2c clients speak) works too.
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: protocols}}
	resp, err := h2c.Get(base + "/version")
	if err != nil {
		t.Fatalf("h2c GET /version: %v", err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Errorf("h2c GET /version: %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
	h2c.CloseIdleConnections()
}

func TestHTTPErrorRate(t *testing.T) {
	const n, rate = 400, 0.3
	_, addrs := servePod(t, testPod(withEnv(EnvErrorRate, "0.3", EnvErrorHTTPCode, "503")), nil)
	base := "http://" + addrs["http"]
	counts := map[int]int{}
	for range n {
		counts[doHTTP(t, http.MethodGet, base+"/", nil, nil).code]++
	}
	if counts[200]+counts[503] != n {
		t.Fatalf("status codes %v, want only 200 and 503", counts)
	}
	sd := math.Sqrt(n * rate * (1 - rate))
	if math.Abs(float64(counts[503])-n*rate) > 5*sd {
		t.Errorf("%d of %d failed, want %v ± %.0f", counts[503], n, n*rate, 5*sd)
	}
}

func TestHTTPAlwaysFailingSparesProbes(t *testing.T) {
	_, addrs := servePod(t, testPod(withEnv(EnvErrorRate, "1")), nil)
	base := "http://" + addrs["http"]
	res := doHTTP(t, http.MethodGet, base+"/", nil, nil)
	if res.code != 500 || decodeJSON[map[string]string](t, res.body)["error"] != "injected failure" {
		t.Errorf("GET / = %d %s, want an injected 500", res.code, res.body)
	}
	if got := doHTTP(t, http.MethodGet, base+"/status/200", nil, nil).code; got != 500 {
		t.Errorf("GET /status/200 = %d, want 500: app endpoints all fail", got)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if got := doHTTP(t, http.MethodGet, base+p, nil, nil).code; got != 200 {
			t.Errorf("GET %s = %d, want 200: probes never fail", p, got)
		}
	}
}

func TestHTTPLatency(t *testing.T) {
	const latency = 60 * time.Millisecond
	_, addrs := servePod(t, testPod(withEnv(EnvLatencyMS, "60", EnvLatencyJitterMS, "40")), nil)
	base := "http://" + addrs["http"]

	var wg sync.WaitGroup
	took := make([]time.Duration, 8)
	for i := range took {
		wg.Go(func() {
			start := time.Now()
			if res := doHTTP(t, http.MethodGet, base+"/", nil, nil); res.code != 200 {
				t.Errorf("status %d", res.code)
			}
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for _, d := range took {
		if d < latency {
			t.Errorf("request took %v, want >= %v", d, latency)
		}
	}
	// Probes are not delayed: with a latency this large a delayed probe is obvious.
	_, slow := servePod(t, testPod(withEnv(EnvLatencyMS, "2000")), nil)
	start := time.Now()
	doHTTP(t, http.MethodGet, "http://"+slow["http"]+"/healthz", nil, nil)
	if d := time.Since(start); d >= 2*time.Second {
		t.Errorf("/healthz took %v; probes must not be delayed", d)
	}
}

func TestHTTPClientGoneDuringDelay(t *testing.T) {
	srv, addrs := servePod(t, testPod(withEnv(EnvLatencyMS, "5000")), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addrs["http"]+"/", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("request finished despite the 5s latency")
	}
	// The server notices the disconnect and records it as Envoy would: code 0, flag DC.
	deadline := time.Now().Add(3 * time.Second)
	for {
		fams, err := srv.Gatherer().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == MetricRequestsTotal && counterSum(f, map[string]string{"response_code": "0", "response_flags": "DC"}) == 1 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request recorded with response_code 0 / DC")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
