package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrRedirect is returned for a redirect: guarded clients never follow
// one (it could lead to an address the caller never named, or carry
// credentials there).
var ErrRedirect = errors.New("redirect not followed")

// hostKey carries the name being dialed from DialContext to the connect
// check.
type hostKey struct{}

// Dialer dials TCP connections under a Policy. Resolver, when set,
// replaces the system resolver (tests).
type Dialer struct {
	Policy   Policy
	Timeout  time.Duration
	Resolver *net.Resolver
}

// DialContext dials addr ("host:port"); the policy is checked on each
// address the host resolves to, just before connecting to it.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", network, err)
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	nd := &net.Dialer{
		Timeout:   timeout,
		KeepAlive: 30 * time.Second,
		Resolver:  d.Resolver,
		ControlContext: func(ctx context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &RefusedError{Host: host, Reason: "not an IP address"}
			}
			name, _ := ctx.Value(hostKey{}).(string)
			return d.Policy.Check(name, ap)
		},
	}
	return nd.DialContext(context.WithValue(ctx, hostKey{}, host), network, addr)
}

// Transport returns an HTTP transport that dials under the policy, uses
// no proxy and verifies TLS unless insecure.
func (d *Dialer) Transport(insecure bool) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12}, //nolint:gosec // opt-in per provider
	}
}

// Client returns an HTTP client over rt that refuses redirects with
// ErrRedirect.
func Client(rt http.RoundTripper, timeout time.Duration) *http.Client {
	return &http.Client{Transport: rt, Timeout: timeout, CheckRedirect: refuseRedirect}
}

func refuseRedirect(*http.Request, []*http.Request) error { return ErrRedirect }

// Classify words why a call failed in a few status-safe words that say
// nothing about the remote host beyond the class: "refused: address not
// allowed", "redirect not followed", "timeout", "connection failed".
func Classify(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrRefused):
		return "refused: " + ErrRefused.Error()
	case errors.Is(err, ErrRedirect):
		return ErrRedirect.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "connection failed"
	}
}

// StatusClass words an HTTP status code as a class: "rejected (4xx)",
// "server error (5xx)", "redirect not followed" for 3xx, "" for 2xx.
func StatusClass(code int) string {
	switch {
	case code >= 200 && code < 300:
		return ""
	case code >= 300 && code < 400:
		return ErrRedirect.Error()
	case code >= 400 && code < 500:
		return "rejected (4xx)"
	case code >= 500 && code < 600:
		return "server error (5xx)"
	default:
		return "unexpected answer"
	}
}
