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
// retries on transport errors, 429 and 5xx. Every call goes through the
// egress guard (internal/egress): loopback, link-local, metadata and API
// server addresses are refused unless the admin allowed them, redirects
// are never followed and no proxy is used. An optional list of hosts
// restricts hooks further.
//
// What a hook answered is told by class only ("rejected (4xx)", "server
// error (5xx)", "timeout", "connection failed", "refused: address not
// allowed"): a Canary's author must not learn status codes or bodies of
// arbitrary hosts from serin's network position through status or
// events. Response bodies are never read into messages or logs, and URLs
// are logged without userinfo or query string.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/go-logr/logr"

	"github.com/serin-dev/serin/api/querytemplate"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/egress"
)

// Defaults (a hook's timeout defaults to v1alpha1.DefaultHookTimeout).
const (
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
	// "host", "host:port", or "*.suffix" for any subdomain of suffix. It
	// restricts hooks further; the egress policy applies either way.
	AllowedHosts []string
	// Egress is the policy every call's connection is checked against
	// (the zero policy refuses loopback, link-local and metadata
	// addresses).
	Egress egress.Policy
	// Backoff is the first retry delay, doubled each retry up to 10s
	// (default 1s).
	Backoff time.Duration
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
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	tr := (&egress.Dialer{Policy: opts.Egress}).Transport(false)
	tr.ResponseHeaderTimeout = 0 // each hook has its own timeout
	return &Caller{opts: opts, client: egress.Client(tr, 0)}
}

// Result is one hook's call.
type Result struct {
	Hook string
	Type v1alpha1.HookType
	// URL is the hook's URL without userinfo or query string.
	URL string
	// StatusCode of the last attempt; 0 when there was no answer. For
	// logs only: status and events get the class (Reason).
	StatusCode int
	// OK is a 2xx answer.
	OK       bool
	Attempts int
	// Err is the class of a failure without an answer ("timeout after
	// 10s", "connection failed", "refused: address not allowed", ...).
	Err string
	// cause is the transport error behind Err, for the log.
	cause    error
	Duration time.Duration
}

// Reason is a short status-safe account of a failure, by class:
// "rejected (4xx)", "server error (5xx)", "redirect not followed",
// "timeout after 10s", "connection failed", "refused: address not
// allowed".
func (r Result) Reason() string {
	switch {
	case r.Err != "":
		return r.Err
	case r.StatusCode != 0:
		return egress.StatusClass(r.StatusCode)
	default:
		return "no answer"
	}
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
	res.URL = egress.RedactURL(u)
	if !c.allowed(u) {
		res.Err = "refused: host is not in the allowed hook hosts"
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
	c.log(ctx, rel, res)
	return res
}

// log writes one line per call: the redacted URL, the status code and the
// transport error (without the URL), never a response body.
func (c *Caller) log(ctx context.Context, rel Release, res Result) {
	log := c.opts.Log
	if l, err := logr.FromContext(ctx); err == nil {
		log = l
	}
	kv := []any{"canary", rel.target(), "hook", res.Hook, "type", string(res.Type), "url", res.URL,
		"status", res.StatusCode, "attempts", res.Attempts, "duration", res.Duration}
	switch {
	case res.OK:
		log.V(1).Info("webhook called", kv...)
	case res.cause != nil:
		log.Info("webhook failed", append(kv, "reason", res.Reason(), "error", res.cause.Error())...)
	default:
		log.Info("webhook failed", append(kv, "reason", res.Reason())...)
	}
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
		res.cause = egress.Cause(err)
		switch {
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
			res.Err = fmt.Sprintf("timeout after %v", timeout)
		default:
			res.Err = egress.Classify(err)
		}
		// A refused address or redirect stays refused: no retry.
		return !errors.Is(err, egress.ErrRefused) && !errors.Is(err, egress.ErrRedirect)
	}
	defer resp.Body.Close()
	// Drain a little so the connection can be reused; the body is never
	// kept.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	res.StatusCode = resp.StatusCode
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		res.OK = true
		return false
	case resp.StatusCode == http.StatusTooManyRequests || (resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented):
		return true
	}
	return false
}

func (c *Caller) allowed(u *url.URL) bool {
	if len(c.opts.AllowedHosts) == 0 {
		return true
	}
	return egress.MatchHost(c.opts.AllowedHosts, u.Hostname()) || egress.MatchHost(c.opts.AllowedHosts, u.Host)
}

func hookType(h v1alpha1.CanaryWebhook) v1alpha1.HookType {
	if h.Type == "" {
		return v1alpha1.HookRollout
	}
	return h.Type
}
