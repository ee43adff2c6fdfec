// Package hooks calls a release's webhooks with Flagger's payloads and
// status-code semantics:
//
//   - confirm-rollout, confirm-traffic-increase, confirm-promotion: gates;
//     2xx opens, anything else (or no answer) keeps the release waiting;
//   - pre-rollout, rollout: checks; anything but 2xx is a failed check;
//   - rollback: 2xx asks for a rollback now; anything else does not;
//   - post-rollout, event: notifications; failures are only reported.
//
// Calls are POSTs of JSON with a per-hook timeout (default 10s) and
// retries on transport errors, 429 and 5xx. Redirects are never followed
// (a 3xx is a failure that says so), response bodies are cut to a few
// hundred bytes and only ever appear in event and log messages (never in
// the status-safe message), and an optional allow-list limits the hosts
// hooks may call.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-logr/logr"

	"github.com/serin-dev/serin/api/querytemplate"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// Defaults (a hook's timeout defaults to v1alpha1.DefaultHookTimeout).
const (
	DefaultMaxBody = 256
	DefaultBackoff = time.Second
	maxBackoff     = 10 * time.Second
)

// Payload is the JSON body of every hook call, as Flagger sends it.
type Payload struct {
	Name      string               `json:"name"`
	Namespace string               `json:"namespace"`
	Phase     v1alpha1.CanaryPhase `json:"phase"`
	Checksum  string               `json:"checksum"`
	Type      v1alpha1.HookType    `json:"type"`
	Metadata  map[string]string    `json:"metadata,omitempty"`
}

// Event metadata keys, as in Flagger.
const (
	MetaEventMessage = "eventMessage"
	MetaEventType    = "eventType"
	MetaTimestamp    = "timestamp"
)

// Release identifies the release the hooks are called for.
type Release struct {
	Name, Namespace string
	Phase           v1alpha1.CanaryPhase
	// Checksum identifies the revision under release (the canary's
	// pod-template hash).
	Checksum string
}

func (r Release) target() string { return r.Name + "." + r.Namespace }

// Options configure a Caller.
type Options struct {
	// AllowedHosts, when not empty, are the only hosts hooks may call:
	// "host", "host:port", or "*.suffix" for any subdomain of suffix.
	AllowedHosts []string
	// MaxBody is how many bytes of a response body go into messages
	// (default 256).
	MaxBody int
	// Backoff is the first retry delay, doubled each retry up to 10s
	// (default 1s).
	Backoff time.Duration
	// Transport overrides the HTTP transport (tests, proxies).
	Transport http.RoundTripper
	// Now stamps event payloads (default time.Now).
	Now func() time.Time
	// Log is used when the context carries no logger.
	Log logr.Logger
}

// Caller calls webhooks. It is safe for concurrent use.
type Caller struct {
	opts   Options
	client *http.Client
}

// New returns a Caller.
func New(opts Options) *Caller {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	tr := opts.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		}
	}
	return &Caller{opts: opts, client: &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Result is one hook's call.
type Result struct {
	Hook string
	Type v1alpha1.HookType
	// URL is the hook's URL without credentials.
	URL string
	// StatusCode of the last attempt; 0 when there was no answer.
	StatusCode int
	// OK is a 2xx answer.
	OK       bool
	Attempts int
	// Err says why the call failed without an answer, or why a 3xx was
	// not followed; it never holds the response body.
	Err string
	// Body is the start of the response body, cut to Options.MaxBody and
	// made one line. For events and logs only: never store it in status.
	Body     string
	Duration time.Duration
}

// Reason is a short status-safe account of a failure: "403 Forbidden",
// "timeout after 10s", "redirect to … not followed".
func (r Result) Reason() string {
	switch {
	case r.Err != "":
		return r.Err
	case r.StatusCode != 0:
		return strconv.Itoa(r.StatusCode) + " " + http.StatusText(r.StatusCode)
	default:
		return "no answer"
	}
}

// ReasonWithBody is Reason followed by the truncated body, for events and
// logs.
func (r Result) ReasonWithBody() string {
	if r.Body == "" {
		return r.Reason()
	}
	return r.Reason() + ": " + r.Body
}

// Call calls one hook with the payload for its type and returns what
// happened; it never returns an error: failures are in the Result.
func (c *Caller) Call(ctx context.Context, rel Release, h v1alpha1.CanaryWebhook) Result {
	return c.call(ctx, rel, h, nil)
}

func (c *Caller) call(ctx context.Context, rel Release, h v1alpha1.CanaryWebhook, extra map[string]string) Result {
	typ := hookType(h)
	res := Result{Hook: h.Name, Type: typ, URL: h.URL}
	start := time.Now()

	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		res.Err = "URL is not an http(s) URL"
		return res
	}
	res.URL = u.Redacted()
	if !c.allowed(u) {
		res.Err = fmt.Sprintf("host %s is not in the allowed hook hosts", u.Host)
		return res
	}
	ts := h.Timeout
	if ts == "" {
		ts = v1alpha1.DefaultHookTimeout
	}
	timeout, err := querytemplate.ParseDuration(ts)
	if err != nil || timeout <= 0 {
		res.Err = fmt.Sprintf("timeout %q is not a positive duration", ts)
		return res
	}
	p := Payload{Name: rel.Name, Namespace: rel.Namespace, Phase: rel.Phase, Checksum: rel.Checksum, Type: typ}
	if len(h.Metadata) > 0 || len(extra) > 0 {
		p.Metadata = map[string]string{}
		for k, v := range extra {
			p.Metadata[k] = v
		}
		for k, v := range h.Metadata {
			if _, taken := p.Metadata[k]; !taken {
				p.Metadata[k] = v
			}
		}
	}
	body, err := json.Marshal(p)
	if err != nil {
		res.Err = "payload: " + err.Error()
		return res
	}

	retries := max(int(h.Retries), 0)
	delay := c.opts.Backoff
	for attempt := 0; ; attempt++ {
		res.Attempts = attempt + 1
		retry := c.attempt(ctx, u, body, timeout, &res)
		if !retry || attempt >= retries || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, maxBackoff)
	}
	res.Duration = time.Since(start)
	log := c.opts.Log
	if l, err := logr.FromContext(ctx); err == nil {
		log = l
	}
	kv := []any{"canary", rel.target(), "hook", h.Name, "type", string(typ), "url", res.URL,
		"status", res.StatusCode, "attempts", res.Attempts, "duration", res.Duration}
	if res.OK {
		log.V(1).Info("webhook called", kv...)
	} else {
		log.Info("webhook failed", append(kv, "reason", res.ReasonWithBody())...)
	}
	return res
}

// attempt makes one request and fills res; it reports whether a retry
// may help (no answer, 429 or 5xx other than 501).
func (c *Caller) attempt(ctx context.Context, u *url.URL, body []byte, timeout time.Duration, res *Result) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	*res = Result{Hook: res.Hook, Type: res.Type, URL: res.URL, Attempts: res.Attempts}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		res.Err = "request: " + err.Error()
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
			res.Err = fmt.Sprintf("timeout after %v", timeout)
		default:
			res.Err = "request failed: " + describe(err)
		}
		return true
	}
	defer resp.Body.Close()
	res.StatusCode = resp.StatusCode
	res.Body = c.readBody(resp.Body)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		res.OK = true
		return false
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		loc := resp.Header.Get("Location")
		if lu, err := url.Parse(loc); err == nil {
			loc = lu.Redacted()
		}
		res.Err = fmt.Sprintf("%d redirect to %q not followed", resp.StatusCode, loc)
		return false
	case resp.StatusCode == http.StatusTooManyRequests || (resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented):
		return true
	}
	return false
}

// readBody keeps the first MaxBody bytes as one printable line and drains
// a little more so the connection can be reused.
func (c *Caller) readBody(r io.Reader) string {
	buf, _ := io.ReadAll(io.LimitReader(r, int64(c.opts.MaxBody)+1))
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 64<<10))
	truncated := len(buf) > c.opts.MaxBody
	if truncated {
		buf = buf[:c.opts.MaxBody]
	}
	s := strings.ToValidUTF8(string(buf), "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if truncated {
		s += "…"
	}
	return s
}

func (c *Caller) allowed(u *url.URL) bool {
	if len(c.opts.AllowedHosts) == 0 {
		return true
	}
	host := strings.ToLower(u.Hostname())
	hostPort := strings.ToLower(u.Host)
	for _, a := range c.opts.AllowedHosts {
		a = strings.ToLower(strings.TrimSpace(a))
		switch {
		case a == host || a == hostPort:
			return true
		case strings.HasPrefix(a, "*.") && strings.HasSuffix(host, a[1:]):
			return true
		}
	}
	return false
}

// describe shortens a transport error to its cause, without the URL.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

func hookType(h v1alpha1.CanaryWebhook) v1alpha1.HookType {
	if h.Type == "" {
		return v1alpha1.HookRollout
	}
	return h.Type
}
