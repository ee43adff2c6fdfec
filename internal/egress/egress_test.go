package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestCheck(t *testing.T) {
	api := []netip.AddrPort{netip.MustParseAddrPort("10.96.0.1:443"), netip.MustParseAddrPort("127.0.0.1:6443")}
	tests := []struct {
		name  string
		allow []string
		host  string
		addr  string
		want  string // "" allowed, else the reason
	}{
		{name: "public", addr: "93.184.216.34:443"},
		{name: "private 10/8", addr: "10.1.2.3:80"},
		{name: "private 192.168", addr: "192.168.1.1:80"},
		{name: "ULA", addr: "[fd12::1]:80"},
		{name: "metadata", addr: "169.254.169.254:80", want: "link-local"},
		{name: "link-local v4", addr: "169.254.10.10:80", want: "link-local"},
		{name: "link-local v6", addr: "[fe80::1]:80", want: "link-local"},
		{name: "link-local v6 zone", addr: "[fe80::1%eth0]:80", want: "link-local"},
		{name: "aws v6 metadata", addr: "[fd00:ec2::254]:80", want: "metadata"},
		{name: "alibaba metadata", addr: "100.100.100.200:80", want: "metadata"},
		{name: "v4-mapped metadata", addr: "[::ffff:169.254.169.254]:80", want: "link-local"},
		{name: "nat64 metadata", addr: "[64:ff9b::a9fe:a9fe]:80", want: "link-local"},
		{name: "loopback", addr: "127.0.0.1:8080", want: "loopback"},
		{name: "loopback 127/8", addr: "127.3.2.1:8080", want: "loopback"},
		{name: "loopback v6", addr: "[::1]:8080", want: "loopback"},
		{name: "v4-mapped loopback", addr: "[::ffff:127.0.0.1]:8080", want: "loopback"},
		{name: "unspecified", addr: "0.0.0.0:80", want: "unspecified"},
		{name: "this network", addr: "0.1.2.3:80", want: "unspecified"},
		{name: "unspecified v6", addr: "[::]:80", want: "unspecified"},
		{name: "multicast", addr: "224.0.0.1:80", want: "multicast"},
		{name: "multicast v6", addr: "[ff02::1]:80", want: "multicast"},
		{name: "broadcast", addr: "255.255.255.255:80", want: "broadcast"},
		{name: "api service", addr: "10.96.0.1:443", want: "API server"},
		{name: "api service other port", addr: "10.96.0.1:10250", want: "API server"},
		{name: "api loopback port", allow: []string{"127.0.0.0/8"}, addr: "127.0.0.1:6443", want: "API server"},
		{name: "loopback allowed, other port", allow: []string{"127.0.0.0/8"}, addr: "127.0.0.1:8080"},
		{name: "api not lifted by CIDR", allow: []string{"10.0.0.0/8"}, addr: "10.96.0.1:443", want: "API server"},
		{name: "api lifted by exact IP", allow: []string{"10.96.0.1"}, addr: "10.96.0.1:443"},
		{name: "api not lifted by host", allow: []string{"kubernetes.default"}, host: "kubernetes.default", addr: "10.96.0.1:443", want: "API server"},
		{name: "metadata lifted by CIDR", allow: []string{"169.254.169.254/32"}, addr: "169.254.169.254:80"},
		{name: "metadata not lifted by other CIDR", allow: []string{"169.254.1.0/24"}, addr: "169.254.169.254:80", want: "link-local"},
		{name: "host allowed", allow: []string{"sidecar.local"}, host: "Sidecar.Local", addr: "127.0.0.1:9090"},
		{name: "wildcard host", allow: []string{"*.svc.cluster.local"}, host: "prom.monitoring.svc.cluster.local", addr: "127.0.0.1:9090"},
		{name: "wildcard is not the suffix itself", allow: []string{"*.svc.cluster.local"}, host: "svc.cluster.local", addr: "127.0.0.1:9090", want: "loopback"},
		{name: "other host", allow: []string{"sidecar.local"}, host: "evil.test", addr: "169.254.169.254:80", want: "link-local"},
		{name: "v6 allow", allow: []string{"::1"}, addr: "[::1]:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseAllow(tt.allow)
			if err != nil {
				t.Fatal(err)
			}
			p = p.WithAPIServer(api...)
			ap, err := netip.ParseAddrPort(tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Check(tt.host, ap)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("allowed, want refused (%s)", tt.want)
			case tt.want != "" && (!errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %q, want ErrRefused with %q", err, tt.want)
			}
		})
	}
}

func TestParseAllow(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "http://x", "a b", "host:80", "user@host"} {
		if _, err := ParseAllow([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseAllow([]string{"", " 10.0.0.0/8 ", "prometheus.monitoring", "*.svc", "fd00::/8", "1.2.3.4"}); err != nil {
		t.Error(err)
	}
}

// fakeDNS answers every A query with ip and every AAAA query with
// nothing, over UDP on loopback; it returns a resolver that uses it.
func fakeDNS(t *testing.T, ip [4]byte) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) != nil || len(m.Questions) == 0 {
				continue
			}
			q := m.Questions[0]
			m.Header.Response, m.Header.Authoritative = true, true
			if q.Type == dnsmessage.TypeA {
				m.Answers = []dnsmessage.Resource{{
					Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 1},
					Body:   &dnsmessage.AResource{A: ip},
				}}
			}
			out, err := m.Pack()
			if err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

// TestDialResolvedName: a name that resolves to a refused address is
// refused at connect time, whatever the name looks like; the same server
// on loopback is reached when loopback is allowed.
func TestDialResolvedName(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	for _, tt := range []struct {
		name   string
		ip     [4]byte
		allow  []string
		refuse bool
	}{
		{name: "metadata", ip: [4]byte{169, 254, 169, 254}, refuse: true},
		{name: "loopback", ip: [4]byte{127, 0, 0, 1}, refuse: true},
		{name: "loopback allowed", ip: [4]byte{127, 0, 0, 1}, allow: []string{"127.0.0.0/8"}},
		{name: "loopback allowed by name", ip: [4]byte{127, 0, 0, 1}, allow: []string{"hooks.example.test"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseAllow(tt.allow)
			if err != nil {
				t.Fatal(err)
			}
			d := &Dialer{Policy: p, Resolver: fakeDNS(t, tt.ip), Timeout: 5 * time.Second}
			c := Client(d.Transport(false), 10*time.Second)
			resp, err := c.Get("http://hooks.example.test:" + port + "/x") //nolint:noctx // test
			if resp != nil {
				resp.Body.Close()
			}
			if tt.refuse {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("got %v, want refused", err)
				}
				if got := Classify(err); got != "refused: address not allowed" {
					t.Errorf("Classify = %q", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// TestNoProxy: a proxy in the environment is not used (the guard could
// not see where it connects).
func TestNoProxy(t *testing.T) {
	proxied := false
	proxy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { proxied = true }))
	defer proxy.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")
	d := &Dialer{}
	c := Client(d.Transport(false), 5*time.Second)
	_, err := c.Get("http://169.254.169.254/latest/meta-data/") //nolint:noctx // test
	if !errors.Is(err, ErrRefused) || proxied {
		t.Fatalf("err %v, proxied %v: want refused without the proxy", err, proxied)
	}
}

func TestRedirectRefused(t *testing.T) {
	target := false
	dst := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { target = true }))
	defer dst.Close()
	src := httptest.NewServer(http.RedirectHandler(dst.URL, http.StatusFound))
	defer src.Close()
	p, _ := ParseAllow([]string{"127.0.0.1"})
	c := Client((&Dialer{Policy: p}).Transport(false), 5*time.Second)
	resp, err := c.Get(src.URL) //nolint:noctx // test
	if resp != nil {
		resp.Body.Close()
	}
	if !errors.Is(err, ErrRedirect) || target {
		t.Fatalf("err %v, followed %v: want the redirect refused", err, target)
	}
	if got := Classify(err); got != "redirect not followed" {
		t.Errorf("Classify = %q", got)
	}
}

func TestClassify(t *testing.T) {
	for err, want := range map[error]string{
		context.DeadlineExceeded:   "timeout",
		errors.New("conn reset"):   "connection failed",
		&RefusedError{Reason: "x"}: "refused: address not allowed",
	} {
		if got := Classify(err); got != want {
			t.Errorf("Classify(%v) = %q, want %q", err, got, want)
		}
	}
	for code, want := range map[int]string{200: "", 302: "redirect not followed", 404: "rejected (4xx)", 503: "server error (5xx)"} {
		if got := StatusClass(code); got != want {
			t.Errorf("StatusClass(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@hooks.example/a/b?token=s3cret#frag": "https://hooks.example/a/b",
		"http://10.0.0.1:8080/x":                              "http://10.0.0.1:8080/x",
		"https://hooks.slack.com/services/T/B/X?x=1":          "https://hooks.slack.com/services/T/B/X",
		"::not a url":       "<invalid URL>",
		"/relative?token=1": "<invalid URL>",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactCommand(t *testing.T) {
	in := `hey -z 1m -H "Authorization: Bearer x" 'http://u:p@podinfo-canary.test:9898/?token=s3cret' https://a.example/b#f`
	want := `hey -z 1m -H "Authorization: Bearer x" 'http://podinfo-canary.test:9898/' https://a.example/b`
	if got := RedactCommand(in); got != want {
		t.Errorf("RedactCommand =\n%s\nwant\n%s", got, want)
	}
}
