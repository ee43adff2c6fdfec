package tester

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/analysis/hooks"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/egress"
)

func start(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s := New(opts)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); s.Close() })
	return s, srv
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const podinfo = `{"name":"podinfo","namespace":"test"}`

func TestGates(t *testing.T) {
	_, srv := start(t, Options{})
	steps := []struct {
		path, body string
		code       int
		answer     string
	}{
		{"/gate/approve", podinfo, 200, "OK"},
		{"/gate/halt", podinfo, 403, "Forbidden"},
		{"/gate/check", podinfo, 403, "Forbidden"}, // closed by default
		{"/gate/open", podinfo, 202, ""},
		{"/gate/check", podinfo, 200, "Approved"},
		{"/gate/check", `{"name":"podinfo","namespace":"prod"}`, 403, "Forbidden"}, // per canary
		{"/rollback/check", podinfo, 403, "Forbidden"},                             // gates and rollbacks are apart
		{"/rollback/open", podinfo, 202, ""},
		{"/rollback/check", podinfo, 200, "Approved"},
		{"/gate/close", podinfo, 202, ""},
		{"/gate/check", podinfo, 403, "Forbidden"},
		{"/rollback/close", podinfo, 202, ""},
		{"/rollback/check", podinfo, 403, "Forbidden"},
		{"/gate/open", `{"name":"podinfo"}`, 400, "name and namespace are required"},
		{"/gate/check", `{not json`, 400, "decoding the request body failed"},
		{"/healthz", "", 200, "OK"},
	}
	for _, st := range steps {
		code, body := post(t, srv.URL+st.path, st.body)
		if code != st.code || !strings.HasPrefix(body, st.answer) {
			t.Fatalf("POST %s %s = %d %q; want %d %q", st.path, st.body, code, body, st.code, st.answer)
		}
	}
	resp, err := http.Get(srv.URL + "/gate/check")
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /gate/check = %v, %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}

// serin's own hook caller drives the tester's gates, as a Canary would.
func TestGatesWithHookCaller(t *testing.T) {
	_, srv := start(t, Options{})
	loopback, err := egress.ParseAllow([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	c := hooks.New(hooks.Options{Backoff: time.Millisecond, Egress: loopback})
	rel := hooks.Release{Name: "podinfo", Namespace: "test", Phase: v1alpha1.PhaseWaiting}
	hs := []v1alpha1.CanaryWebhook{
		{Name: "ask", Type: v1alpha1.HookConfirmRollout, URL: srv.URL + "/gate/check"},
		{Name: "manual rollback", Type: v1alpha1.HookRollback, URL: srv.URL + "/rollback/check"},
	}
	ctx := context.Background()
	if o := c.Run(ctx, rel, hs, v1alpha1.HookConfirmRollout); o.Passed {
		t.Fatalf("gate open before anyone opened it: %+v", o)
	}
	post(t, srv.URL+"/gate/open", podinfo)
	if o := c.Run(ctx, rel, hs, v1alpha1.HookConfirmRollout); !o.Passed {
		t.Fatalf("gate closed after /gate/open: %+v", o)
	}
	if o := c.Run(ctx, rel, hs, v1alpha1.HookRollback); o.Rollback {
		t.Fatalf("rollback requested while closed: %+v", o)
	}
	post(t, srv.URL+"/rollback/open", podinfo)
	if o := c.Run(ctx, rel, hs, v1alpha1.HookRollback); !o.Rollback {
		t.Fatalf("rollback not requested after /rollback/open: %+v", o)
	}
}

func TestCommands(t *testing.T) {
	_, srv := start(t, Options{AllowedCommands: []string{"printf", "false", "sleep", "/bin/echo"}, Timeout: 3 * time.Second})
	tests := []struct {
		name   string
		body   string
		code   int
		answer string
	}{
		{"blocking with output", `{"name":"a","namespace":"b","metadata":{"cmd":"printf 'hello %s' \"a b\"","blocking":"true","returnCmdOutput":"true"}}`, 200, "hello a b"},
		{"blocking without output", `{"name":"a","namespace":"b","metadata":{"cmd":"printf hi","blocking":"true"}}`, 200, ""},
		{"pre-rollout blocks by default", `{"name":"a","namespace":"b","type":"pre-rollout","metadata":{"cmd":"false"}}`, 500, "exit status 1"},
		{"pre-rollout in background when asked", `{"name":"a","namespace":"b","type":"pre-rollout","metadata":{"cmd":"false","blocking":"false"}}`, 202, ""},
		{"no shell", `{"name":"a","namespace":"b","metadata":{"cmd":"printf $HOME","blocking":"true","returnCmdOutput":"true"}}`, 200, "$HOME"},
		{"shell syntax refused", `{"name":"a","namespace":"b","metadata":{"cmd":"printf a | cat"}}`, 400, "not supported by type cmd"},
		{"not allowed", `{"name":"a","namespace":"b","metadata":{"cmd":"rm -rf /tmp/x"}}`, 403, `command "rm" is not allowed`},
		{"no paths", `{"name":"a","namespace":"b","metadata":{"cmd":"/bin/echo x"}}`, 403, "is not allowed"},
		{"timeout", `{"name":"a","namespace":"b","metadata":{"cmd":"sleep 5","blocking":"true"}}`, 500, "timed out after 3s"},
		{"bash disabled", `{"name":"a","namespace":"b","metadata":{"type":"bash","cmd":"echo hi"}}`, 403, "type bash is disabled"},
		{"unknown type", `{"name":"a","namespace":"b","metadata":{"type":"helmv3","cmd":"test x"}}`, 400, "unknown task type helmv3"},
		{"no metadata", `{"name":"a","namespace":"b"}`, 400, "metadata not found"},
		{"no cmd", `{"name":"a","namespace":"b","metadata":{"type":"cmd"}}`, 400, "cmd not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(t, srv.URL+"/", tt.body)
			if code != tt.code || !strings.Contains(body, tt.answer) || (tt.answer == "" && body != "") {
				t.Fatalf("POST / = %d %q; want %d %q", code, body, tt.code, tt.answer)
			}
		})
	}
}

func TestBash(t *testing.T) {
	_, srv := start(t, Options{AllowBash: true})
	code, body := post(t, srv.URL+"/", `{"name":"a","namespace":"b","metadata":{"type":"bash","cmd":"echo $((1+2)) | tr 3 x","returnCmdOutput":"true"}}`)
	if code != 200 || body != "x\n" {
		t.Fatalf("bash = %d %q", code, body)
	}
	code, body = post(t, srv.URL+"/", `{"name":"a","namespace":"b","metadata":{"type":"bash","cmd":"echo oops >&2; exit 3"}}`)
	if code != 500 || !strings.Contains(body, "exit status 3: oops") {
		t.Fatalf("failing bash = %d %q", code, body)
	}
}

func TestBackgroundCommands(t *testing.T) {
	s, srv := start(t, Options{AllowedCommands: []string{"sleep"}})
	run := func(ns, secs string) {
		code, _ := post(t, srv.URL+"/", `{"name":"podinfo","namespace":"`+ns+`","metadata":{"cmd":"sleep `+secs+`"}}`)
		if code != http.StatusAccepted {
			t.Fatalf("POST / = %d, want 202", code)
		}
	}
	run("test", "0.5")
	run("test", "0.5") // the same command for the same canary runs once
	run("prod", "0.5")
	want := []string{"podinfo.prod: sleep 0.5", "podinfo.test: sleep 0.5"}
	if got := s.Running(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Running() = %q, want %q", got, want)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Running()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := s.Running(); len(got) != 0 {
		t.Fatalf("commands still running: %q", got)
	}

	// Close stops long commands at once.
	run("test", "30")
	begin := time.Now()
	s.Close()
	if time.Since(begin) > 5*time.Second || len(s.Running()) != 0 {
		t.Fatalf("Close() took %v, running %q", time.Since(begin), s.Running())
	}
}

func TestOutputCapped(t *testing.T) {
	_, srv := start(t, Options{AllowedCommands: []string{"printf"}, MaxOutput: 5})
	code, body := post(t, srv.URL+"/", `{"name":"a","namespace":"b","metadata":{"cmd":"printf 0123456789","blocking":"true","returnCmdOutput":"true"}}`)
	if code != 200 || body != "01234…" {
		t.Fatalf("POST / = %d %q", code, body)
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, Options{}) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /readyz = %v, %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve() = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve() did not stop")
	}
	if err := Run(context.Background(), "256.0.0.1:99999", Options{}); err == nil {
		t.Fatal("Run() on a bad address succeeded")
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/", want: []string{"hey", "-z", "1m", "-q", "10", "-c", "2", "http://podinfo-canary.test:9898/"}},
		{in: `hey -m POST -d '{test: 2}' http://x/echo`, want: []string{"hey", "-m", "POST", "-d", "{test: 2}", "http://x/echo"}},
		{in: `curl -H "X-Name: a \"b\" \$c" x`, want: []string{"curl", "-H", `X-Name: a "b" $c`, "x"}},
		{in: `a\ b 'c'"d" ""`, want: []string{"a b", "cd", ""}},
		{in: "ghz --insecure \\\n  podinfo.test:9898", want: []string{"ghz", "--insecure", "podinfo.test:9898"}},
		{in: `"a \n b"`, want: []string{`a \n b`}},
		{in: "   ", want: nil},
		{in: `'open`, wantErr: "unterminated single quote"},
		{in: `"open`, wantErr: "unterminated double quote"},
		{in: `a; b`, wantErr: `";"`},
		{in: `a && b`, wantErr: `"&"`},
		{in: `a > f`, wantErr: `">"`},
		{in: "a `b`", wantErr: "\"`\""},
		{in: `a $(b)`, wantErr: `"$"`},
		{in: `a '|' "&" \;`, want: []string{"a", "|", "&", ";"}},
	}
	for _, tt := range tests {
		got, err := SplitArgs(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("SplitArgs(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitArgs(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
