package hooks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/egress"
)

// receiver is a real HTTP server that records payloads and answers with
// the status and body its handler picks.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	payloads []Payload
	hits     atomic.Int32
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(rc.hits.Add(1))
		var p Payload
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.payloads = append(rc.payloads, p)
		rc.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func status(code int, body string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

var rel = Release{Name: "podinfo", Namespace: "test", Phase: v1alpha1.PhaseProgressing, Checksum: "7d4f9c"}

// loopback is the egress policy of the tests: their receivers listen on
// 127.0.0.1, which an admin has to allow.
var loopback, _ = egress.ParseAllow([]string{"127.0.0.0/8"})

func caller(opts Options) *Caller {
	if opts.Backoff == 0 {
		opts.Backoff = time.Millisecond
	}
	opts.Egress = loopback
	return New(opts)
}

func TestCall(t *testing.T) {
	ok := newReceiver(t, status(http.StatusOK, "fine"))
	accepted := newReceiver(t, status(http.StatusAccepted, ""))
	forbidden := newReceiver(t, status(http.StatusForbidden, "Forbidden\nby policy"))
	long := newReceiver(t, status(http.StatusInternalServerError, strings.Repeat("x", 1000)))
	slow := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	elsewhere := newReceiver(t, status(http.StatusOK, ""))
	redirect := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/x?token=s3cret", http.StatusFound))
	defer redirect.Close()

	tests := []struct {
		name     string
		hook     v1alpha1.CanaryWebhook
		opts     Options
		ok       bool
		status   int
		reason   string
		attempts int
	}{
		{name: "200 passes", hook: v1alpha1.CanaryWebhook{Name: "h", URL: ok.URL}, ok: true, status: 200, attempts: 1},
		{name: "202 passes", hook: v1alpha1.CanaryWebhook{Name: "h", URL: accepted.URL}, ok: true, status: 202, attempts: 1},
		{name: "403 fails, by class", hook: v1alpha1.CanaryWebhook{Name: "h", URL: forbidden.URL, Retries: 3},
			status: 403, reason: "rejected (4xx)", attempts: 1},
		{name: "500 retried, by class", hook: v1alpha1.CanaryWebhook{Name: "h", URL: long.URL, Retries: 2},
			status: 500, reason: "server error (5xx)", attempts: 3},
		{name: "timeout", hook: v1alpha1.CanaryWebhook{Name: "h", URL: slow.URL, Timeout: "50ms"},
			reason: "timeout after 50ms", attempts: 1},
		{name: "redirect not followed", hook: v1alpha1.CanaryWebhook{Name: "h", URL: redirect.URL},
			reason: "redirect not followed", attempts: 1},
		{name: "host not allowed", hook: v1alpha1.CanaryWebhook{Name: "h", URL: ok.URL}, opts: Options{AllowedHosts: []string{"loadtester.test", "*.svc.cluster.local"}},
			reason: "refused: host is not in the allowed hook hosts"},
		{name: "host allowed by host:port", hook: v1alpha1.CanaryWebhook{Name: "h", URL: ok.URL}, opts: Options{AllowedHosts: []string{hostOf(ok.URL)}},
			ok: true, status: 200, attempts: 1},
		{name: "host allowed by name", hook: v1alpha1.CanaryWebhook{Name: "h", URL: ok.URL}, opts: Options{AllowedHosts: []string{"127.0.0.1"}},
			ok: true, status: 200, attempts: 1},
		{name: "bad scheme", hook: v1alpha1.CanaryWebhook{Name: "h", URL: "file:///etc/passwd"}, reason: "not an http(s) URL"},
		{name: "bad timeout", hook: v1alpha1.CanaryWebhook{Name: "h", URL: ok.URL, Timeout: "soon"}, reason: "not a positive duration"},
		{name: "connection refused retried", hook: v1alpha1.CanaryWebhook{Name: "h", URL: "http://127.0.0.1:1/", Retries: 1},
			reason: "connection failed", attempts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := caller(tt.opts).Call(context.Background(), rel, tt.hook)
			if r.OK != tt.ok || r.StatusCode != tt.status || r.Attempts != tt.attempts {
				t.Fatalf("Call() = %+v; want ok=%v status=%d attempts=%d", r, tt.ok, tt.status, tt.attempts)
			}
			if !strings.Contains(r.Reason(), tt.reason) {
				t.Fatalf("Reason() = %q, want %q", r.Reason(), tt.reason)
			}
			if strings.Contains(r.Reason(), "Forbidden") || strings.Contains(r.Reason(), "xxxx") || strings.Contains(r.Reason(), "s3cret") {
				t.Fatalf("Reason() leaks the body: %q", r.Reason())
			}
		})
	}
	if elsewhere.hits.Load() != 0 {
		t.Fatal("a redirect was followed")
	}
	if r := caller(Options{}).Call(context.Background(), rel, v1alpha1.CanaryWebhook{Name: "h", URL: ok.URL}); r.Duration <= 0 {
		t.Fatal("Duration not measured")
	}
}

func hostOf(raw string) string {
	u, _ := url.Parse(raw)
	return u.Host
}

func TestPayload(t *testing.T) {
	rc := newReceiver(t, status(http.StatusOK, ""))
	c := caller(Options{})
	c.Call(context.Background(), rel, v1alpha1.CanaryWebhook{Name: "load", URL: rc.URL, Metadata: map[string]string{"cmd": "hey -z 1m http://podinfo-canary.test:9898/"}})
	c.Call(context.Background(), rel, v1alpha1.CanaryWebhook{Name: "gate", Type: v1alpha1.HookConfirmPromotion, URL: rc.URL})
	want := []Payload{
		{Name: "podinfo", Namespace: "test", Phase: "Progressing", Checksum: "7d4f9c", Type: "rollout", Metadata: map[string]string{"cmd": "hey -z 1m http://podinfo-canary.test:9898/"}},
		{Name: "podinfo", Namespace: "test", Phase: "Progressing", Checksum: "7d4f9c", Type: "confirm-promotion"},
	}
	got, _ := json.Marshal(rc.payloads)
	w, _ := json.Marshal(want)
	if string(got) != string(w) {
		t.Fatalf("payloads =\n%s\nwant\n%s", got, w)
	}
}

func TestRunSemantics(t *testing.T) {
	ok := newReceiver(t, status(http.StatusOK, "Approved"))
	closed := newReceiver(t, status(http.StatusForbidden, "Forbidden"))
	never := newReceiver(t, status(http.StatusOK, ""))
	hooks := []v1alpha1.CanaryWebhook{
		{Name: "open-gate", Type: v1alpha1.HookConfirmRollout, URL: ok.URL},
		{Name: "closed-gate", Type: v1alpha1.HookConfirmRollout, URL: closed.URL},
		{Name: "after-closed", Type: v1alpha1.HookConfirmRollout, URL: never.URL},
		{Name: "smoke", Type: v1alpha1.HookPreRollout, URL: closed.URL},
		{Name: "load", URL: ok.URL},
		{Name: "no-rollback", Type: v1alpha1.HookRollback, URL: closed.URL},
		{Name: "rollback-gate", Type: v1alpha1.HookRollback, URL: ok.URL},
		{Name: "notify-a", Type: v1alpha1.HookPostRollout, URL: closed.URL},
		{Name: "notify-b", Type: v1alpha1.HookPostRollout, URL: ok.URL},
	}
	c := caller(Options{})
	ctx := context.Background()

	gate := c.Run(ctx, rel, hooks, v1alpha1.HookConfirmRollout)
	if gate.Passed || len(gate.Results) != 2 || never.hits.Load() != 0 {
		t.Fatalf("confirm-rollout = %+v; want closed after two calls", gate)
	}
	if gate.Message != "Halt podinfo.test advancement waiting for approval closed-gate: rejected (4xx)" {
		t.Fatalf("confirm-rollout message = %q", gate.Message)
	}
	if o := c.Run(ctx, rel, hooks, v1alpha1.HookConfirmPromotion); !o.Passed || len(o.Results) != 0 {
		t.Fatalf("no confirm-promotion hooks = %+v; want open", o)
	}
	if o := c.Run(ctx, rel, hooks, v1alpha1.HookPreRollout); o.Passed || o.Message != "Halt podinfo.test advancement pre-rollout check smoke failed: rejected (4xx)" {
		t.Fatalf("pre-rollout = %+v", o)
	}
	if o := c.Run(ctx, rel, hooks, v1alpha1.HookRollout); !o.Passed || len(o.Results) != 1 || o.Results[0].Hook != "load" {
		t.Fatalf("rollout (default type) = %+v", o)
	}
	rb := c.Run(ctx, rel, hooks, v1alpha1.HookRollback)
	if !rb.Rollback || len(rb.Results) != 2 || rb.Message != "Rolling back podinfo.test manual webhook rollback-gate invoked" {
		t.Fatalf("rollback = %+v", rb)
	}
	if o := c.Run(ctx, rel, hooks[:6], v1alpha1.HookRollback); o.Rollback {
		t.Fatalf("a 403 rollback hook asked for a rollback: %+v", o)
	}
	post := c.Run(ctx, rel, hooks, v1alpha1.HookPostRollout)
	if post.Passed || len(post.Results) != 2 || !strings.HasPrefix(post.Message, "Post-rollout hook notify-a for podinfo.test failed") {
		t.Fatalf("post-rollout = %+v", post)
	}
}

func TestEvent(t *testing.T) {
	rc := newReceiver(t, status(http.StatusOK, ""))
	down := newReceiver(t, status(http.StatusServiceUnavailable, "down"))
	now := time.Date(2020, 1, 9, 22, 7, 15, 167e6, time.UTC)
	c := caller(Options{Now: func() time.Time { return now }})
	hooks := []v1alpha1.CanaryWebhook{
		{Name: "events", Type: v1alpha1.HookEvent, URL: rc.URL, Metadata: map[string]string{"team": "a", MetaEventMessage: "spoofed"}},
		{Name: "broken", Type: v1alpha1.HookEvent, URL: down.URL},
		{Name: "not-an-event", URL: rc.URL},
	}
	o := c.Event(context.Background(), rel, hooks, "New revision detected! Scaling up podinfo.test", "Normal")
	if o.Passed || len(o.Results) != 2 || !strings.Contains(o.Message, "Event hook broken for podinfo.test failed: server error (5xx)") {
		t.Fatalf("Event() = %+v", o)
	}
	if len(rc.payloads) != 1 {
		t.Fatalf("payloads = %+v", rc.payloads)
	}
	p := rc.payloads[0]
	want := map[string]string{MetaEventMessage: "New revision detected! Scaling up podinfo.test", MetaEventType: "Normal",
		MetaTimestamp: "1578607635167", "team": "a"}
	if p.Type != v1alpha1.HookEvent || p.Phase != v1alpha1.PhaseProgressing || len(p.Metadata) != len(want) {
		t.Fatalf("payload = %+v", p)
	}
	for k, v := range want {
		if p.Metadata[k] != v {
			t.Errorf("metadata[%s] = %q, want %q", k, p.Metadata[k], v)
		}
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	rc := newReceiver(t, status(http.StatusBadGateway, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c := New(Options{Backoff: time.Second, Egress: loopback})
	start := time.Now()
	r := c.Call(ctx, rel, v1alpha1.CanaryWebhook{Name: "h", URL: rc.URL, Retries: 10})
	if r.OK || time.Since(start) > 3*time.Second || r.Attempts > 2 {
		t.Fatalf("Call() = %+v after %v; want it to stop with the context", r, time.Since(start))
	}
}

// TestEgressGuard: hooks reach only what the egress policy allows, and a
// refusal says so by class, without a status code or the address.
func TestEgressGuard(t *testing.T) {
	rc := newReceiver(t, status(http.StatusOK, ""))
	for _, tt := range []struct {
		name string
		url  string
		opts Options
	}{
		{name: "metadata", url: "http://169.254.169.254/latest/meta-data/iam/security-credentials/"},
		{name: "metadata v4-mapped", url: "http://[::ffff:169.254.169.254]/latest/meta-data/"},
		{name: "aws v6 metadata", url: "http://[fd00:ec2::254]/latest/meta-data/"},
		{name: "loopback by default", url: rc.URL},
		{name: "localhost by default", url: strings.Replace(rc.URL, "127.0.0.1", "localhost", 1)},
		{name: "loopback allowed but not the API server", url: rc.URL, opts: Options{Egress: loopback.WithAPIServer(netip.MustParseAddrPort(hostOf(rc.URL)))}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Backoff = time.Millisecond
			r := New(opts).Call(context.Background(), rel, v1alpha1.CanaryWebhook{Name: "h", URL: tt.url, Retries: 2})
			if r.OK || r.Reason() != "refused: address not allowed" || r.Attempts != 1 || r.StatusCode != 0 {
				t.Fatalf("Call() = %+v, reason %q; want refused once", r, r.Reason())
			}
		})
	}
	if rc.hits.Load() != 0 {
		t.Fatal("a refused hook reached its receiver")
	}
}

// TestURLRedacted: the URL in a Result (and so in logs) has no userinfo or
// query string.
func TestURLRedacted(t *testing.T) {
	rc := newReceiver(t, status(http.StatusOK, ""))
	u := strings.Replace(rc.URL, "http://", "http://user:pw@", 1) + "/hook?token=s3cret"
	r := caller(Options{}).Call(context.Background(), rel, v1alpha1.CanaryWebhook{Name: "h", URL: u})
	if !r.OK || r.URL != rc.URL+"/hook" {
		t.Fatalf("Call() = %+v; want OK with URL %s/hook", r, rc.URL)
	}
}
