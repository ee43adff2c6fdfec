// Package prom is serin's Prometheus provider: a client for one Prometheus
// (address, basic or bearer auth, TLS), the built-in metrics computed from
// Istio's standard telemetry for both tracks over the same window, custom
// MetricTemplate queries, and a Factory that builds clients from a
// MetricProvider and its Secret.
//
// No data is not zero: a query that returns NaN, an empty vector or no
// series reports a Value with OK false, and the judges treat it as "wait".
// Every call takes its deadline from the context.
package prom

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
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

// New returns a client for cfg, with its own connection pool.
func New(cfg Config) (*Client, error) {
	return newWithTransport(cfg, newTransport(cfg.InsecureSkipVerify))
}

func newWithTransport(cfg Config, base http.RoundTripper) (*Client, error) {
	if cfg.Address == "" {
		return nil, ErrNoAddress
	}
	u, err := url.Parse(cfg.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus address %q is not an http(s) URL", cfg.Address)
	}
	rt := base
	switch {
	case cfg.BearerToken != "":
		rt = authRoundTripper{base: base, header: "Bearer " + cfg.BearerToken}
	case cfg.Username != "" || cfg.Password != "":
		rt = authRoundTripper{base: base, user: cfg.Username, pass: cfg.Password, basic: true}
	}
	c, err := api.NewClient(api.Config{Address: cfg.Address, Client: &http.Client{
		Transport: rt,
		// Prometheus never redirects a query; following one could send
		// credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %q: %w", cfg.Address, err)
	}
	return &Client{address: cfg.Address, api: promv1.NewAPI(c)}, nil
}

func newTransport(insecure bool) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12}, //nolint:gosec // opt-in per provider
	}
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

// Address is the Prometheus this client queries.
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
		return nil, fmt.Errorf("prometheus %s: %w", c.address, err)
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
