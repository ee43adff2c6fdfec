// Package prom is serin's Prometheus provider: a client for one Prometheus
// (address, basic or bearer auth, TLS), the built-in metrics computed from
// Istio's standard telemetry (or, for provider linkerd, the Linkerd proxy's)
// for both tracks over the same window, custom
// MetricTemplate queries, and a Factory that builds clients from a
// MetricProvider and its Secret.
//
// Every connection goes through the egress guard (internal/egress), no
// redirect is followed and no proxy is used. Errors name the Prometheus by
// its redacted URL and tell transport failures and non-Prometheus answers
// by class, never with a response body.
//
// No data is not zero: a query that returns NaN, an empty vector or no
// series reports a Value with OK false, and the judges treat it as "wait".
// Every call takes its deadline from the context.
package prom

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/serin-dev/serin/internal/egress"
)

// Config says where a Prometheus is and how to authenticate to it.
type Config struct {
	// Address is the base URL, e.g. http://prometheus.istio-system:9090.
	Address string
	// Username and Password enable basic auth.
	Username, Password string
	// BearerToken enables bearer auth (it wins over basic auth).
	BearerToken string
	// InsecureSkipVerify skips TLS verification.
	InsecureSkipVerify bool
	// Headers are sent with every query (a MetricTemplate's
	// provider.headers); the credentials above win over them.
	Headers http.Header
}

// Client queries one Prometheus. It is safe for concurrent use.
type Client struct {
	address string
	api     promv1.API
}

// Value is one sampled number; OK is false when there was no data.
type Value struct {
	V  float64
	OK bool
}

// ErrNoAddress is returned when no Prometheus address is configured.
var ErrNoAddress = errors.New("no Prometheus address configured")

// New returns a client for cfg, with its own connection pool, whose
// connections are checked against policy.
func New(cfg Config, policy egress.Policy) (*Client, error) {
	return newWithTransport(cfg, newTransport(policy, cfg.InsecureSkipVerify))
}

func newWithTransport(cfg Config, base http.RoundTripper) (*Client, error) {
	if cfg.Address == "" {
		return nil, ErrNoAddress
	}
	u, err := url.Parse(cfg.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus address %s is not an http(s) URL", egress.Redact(cfg.Address))
	}
	rt := base
	switch {
	case cfg.BearerToken != "":
		rt = authRoundTripper{base: base, header: "Bearer " + cfg.BearerToken}
	case cfg.Username != "" || cfg.Password != "":
		rt = authRoundTripper{base: base, user: cfg.Username, pass: cfg.Password, basic: true}
	}
	// The credentials are set after the headers, over them.
	rt = WithHeaders(rt, cfg.Headers)
	// Prometheus never redirects a query; following one could send
	// credentials elsewhere.
	c, err := api.NewClient(api.Config{Address: cfg.Address, Client: egress.Client(rt, 0)})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", egress.Redact(cfg.Address), err)
	}
	return &Client{address: egress.Redact(cfg.Address), api: promv1.NewAPI(c)}, nil
}

func newTransport(policy egress.Policy, insecure bool) *http.Transport {
	return (&egress.Dialer{Policy: policy}).Transport(insecure)
}

// WithHeaders returns a RoundTripper that adds headers (a MetricTemplate's
// provider.headers) to every request that does not carry them already:
// the protocol's own headers and the credentials, set before, win.
func WithHeaders(rt http.RoundTripper, headers http.Header) http.RoundTripper {
	if len(headers) == 0 {
		return rt
	}
	return headerRoundTripper{base: rt, headers: headers.Clone()}
}

type headerRoundTripper struct {
	base    http.RoundTripper
	headers http.Header
}

func (h headerRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, vs := range h.headers {
		if _, set := r.Header[http.CanonicalHeaderKey(k)]; set {
			continue
		}
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return h.base.RoundTrip(r)
}

type authRoundTripper struct {
	base       http.RoundTripper
	header     string
	user, pass string
	basic      bool
}

func (a authRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if a.basic {
		r.SetBasicAuth(a.user, a.pass)
	} else {
		r.Header.Set("Authorization", a.header)
	}
	return a.base.RoundTrip(r)
}

// Address is the Prometheus this client queries, without userinfo or
// query string.
func (c *Client) Address() string { return c.address }

// Query runs an instant query at the given time and returns its single
// value. A scalar, or a vector of one sample, is a value; NaN, an empty
// vector and no series are no data; more than one series is an error (the
// query should aggregate, e.g. with sum()).
func (c *Client) Query(ctx context.Context, query string, at time.Time) (Value, error) {
	v, err := c.query(ctx, query, at)
	if err != nil {
		return Value{}, err
	}
	switch r := v.(type) {
	case *model.Scalar:
		return value(float64(r.Value)), nil
	case model.Vector:
		switch len(r) {
		case 0:
			return Value{}, nil
		case 1:
			return value(float64(r[0].Value)), nil
		default:
			return Value{}, fmt.Errorf("query returned %d series, want one (aggregate it, e.g. with sum())", len(r))
		}
	default:
		return Value{}, fmt.Errorf("query returned a %s, want a scalar or an instant vector", v.Type())
	}
}

// queryByLabel runs a query that returns one series per value of label and
// returns the values by label value. NaN samples are left out.
func (c *Client) queryByLabel(ctx context.Context, query, label string, at time.Time) (map[string]float64, error) {
	v, err := c.query(ctx, query, at)
	if err != nil {
		return nil, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query returned a %s, want an instant vector", v.Type())
	}
	out := make(map[string]float64, len(vec))
	for _, s := range vec {
		if math.IsNaN(float64(s.Value)) {
			continue
		}
		out[string(s.Metric[model.LabelName(label)])] = float64(s.Value)
	}
	return out, nil
}

func (c *Client) query(ctx context.Context, query string, at time.Time) (model.Value, error) {
	v, _, err := c.api.Query(ctx, query, at)
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", c.address, describe(err))
	}
	if v == nil {
		return nil, fmt.Errorf("prometheus %s: empty answer", c.address)
	}
	return v, nil
}

func value(f float64) Value {
	if math.IsNaN(f) {
		return Value{}
	}
	return Value{V: f, OK: true}
}

// describe words a query error without what a host that is not a
// Prometheus answered: transport failures and non-API answers by class,
// the errors of Prometheus's own API (bad_data, execution, timeout) as it
// gave them.
func describe(err error) error {
	var ae *promv1.Error
	var ue *url.Error
	switch {
	case errors.As(err, &ae):
		switch ae.Type {
		case promv1.ErrClient:
			return errors.New("rejected (4xx)")
		case promv1.ErrServer:
			return errors.New("server error (5xx)")
		case promv1.ErrBadResponse:
			return errors.New("not a Prometheus API answer")
		}
		return err
	case errors.Is(err, egress.ErrRefused):
		return fmt.Errorf("refused: %w", egress.ErrRefused)
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	case errors.As(err, &ue):
		return errors.New(egress.Classify(err))
	}
	return err
}
