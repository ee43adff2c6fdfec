package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/serin-dev/serin/analysis/prom"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/egress"
)

// Public API addresses of the vendors, used when a template names none
// (Flagger's defaults).
const (
	DatadogAddress  = "https://api.datadoghq.com"
	NewRelicAddress = "https://insights-api.newrelic.com"
)

// defaultAddress is a type's address when neither the template nor its
// Secret names one ("" for none).
var defaultAddress = map[v1alpha1.ProviderType]string{
	v1alpha1.ProviderDatadog:  DatadogAddress,
	v1alpha1.ProviderNewRelic: NewRelicAddress,
}

// vendorHosts are the public API hosts of the vendors (Datadog's sites,
// New Relic's US and EU regions): their keys may go there without the
// Secret naming them.
var vendorHosts = map[v1alpha1.ProviderType][]string{
	v1alpha1.ProviderDatadog: {"api.datadoghq.com", "api.datadoghq.eu", "api.us3.datadoghq.com",
		"api.us5.datadoghq.com", "api.ap1.datadoghq.com", "api.ddog-gov.com"},
	v1alpha1.ProviderNewRelic: {"insights-api.newrelic.com", "insights-api.eu.newrelic.com"},
}

// vendorAPI reports whether raw is https on the vendor's default port at
// one of typ's vendor hosts.
func vendorAPI(typ v1alpha1.ProviderType, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || (u.Port() != "" && u.Port() != "443") {
		return false
	}
	return slices.Contains(vendorHosts[typ], strings.ToLower(u.Hostname()))
}

// maxAnswer bounds what is read of an answer.
const maxAnswer = 8 << 20

// conn is one provider as a query sees it: where it is, how to reach it,
// the headers of the template and the Secret's data.
type conn struct {
	typ v1alpha1.ProviderType
	// address is the redacted address, for messages (CloudWatch without
	// one: its region).
	address string
	// base is the parsed address ("" for CloudWatch without one).
	base *url.URL
	// client sends the template's headers with every request.
	client *http.Client
	secret map[string][]byte
	region string
	// awsCredentials replaces AWS's chain when set (tests).
	awsCredentials aws.CredentialsProvider
}

// connect reads p's Secret (when it has one), settles the address and
// checks that the Secret's credentials may go there.
func (f *Factory) connect(ctx context.Context, namespace string, p *v1alpha1.MetricProvider) (*conn, error) {
	c := &conn{typ: p.Type, region: p.Region,
		awsCredentials: f.AWSCredentials}
	raw := p.Address
	var sec prom.ProviderSecret
	// CloudWatch takes its credentials from AWS's chain, never a Secret.
	if p.SecretRef != nil && p.SecretRef.Name != "" && p.Type != v1alpha1.ProviderCloudWatch {
		name := p.SecretRef.Name
		if f.Secrets == nil {
			return nil, fmt.Errorf("provider secret %s/%s: no secret reader configured", namespace, name)
		}
		var err error
		if sec, err = f.Secrets.ProviderSecret(ctx, namespace, name); err != nil {
			return nil, fmt.Errorf("provider secret %s/%s: %w", namespace, name, err)
		}
		if raw == "" {
			raw = strings.TrimSpace(string(sec.Data[prom.SecretAddress]))
		}
		// The vendor's own API is no address of the template author's
		// choosing: the credentials may go there unbound.
		if raw != "" && !vendorAPI(p.Type, raw) {
			if err := prom.Bind(sec, raw); err != nil {
				return nil, fmt.Errorf("provider secret %s/%s: %w", namespace, name, err)
			}
		}
		c.secret = sec.Data
	}
	if raw == "" {
		raw = defaultAddress[p.Type]
	}
	if raw == "" && p.Type != v1alpha1.ProviderCloudWatch {
		return nil, fmt.Errorf("no address: set spec.provider.address (%s has no default)", p.Type)
	}
	if raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("address %s is not an http(s) URL", egress.Redact(raw))
		}
		c.base, c.address = u, egress.Redact(raw)
	} else {
		c.address = "in region " + p.Region
	}
	c.client = egress.Client(prom.WithHeaders(f.transport(p.InsecureSkipVerify), http.Header(p.Headers)), 0)
	return c, nil
}

// need returns the Secret's values of keys, or an error naming the
// missing keys.
func (c *conn) need(keys ...string) ([]string, error) {
	var missing []string
	out := make([]string, len(keys))
	for i, k := range keys {
		v, ok := c.secret[k]
		if !ok || len(v) == 0 {
			missing = append(missing, fmt.Sprintf("%q", k))
		}
		out[i] = string(v)
	}
	if c.secret == nil {
		return nil, fmt.Errorf("%s needs a spec.provider.secretRef with keys %s", c.typ, strings.Join(missing, ", "))
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the provider secret has no %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// endpoint is the address with path appended to its own path.
func (c *conn) endpoint(path string, query url.Values) string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	u.Fragment = ""
	return u.String()
}

// do sends req with auth (which wins over the template's headers) and
// decodes a 2xx JSON answer into out (a *[]byte takes it as it came). A non-2xx answer is an error by
// class, with the API's own message when it gives one.
func (c *conn) do(req *http.Request, auth func(http.Header), out any) error {
	if auth != nil {
		auth(req.Header)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return describe(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("reading the answer: %s", egress.Classify(err))
	}
	if class := egress.StatusClass(resp.StatusCode); class != "" {
		if msg := apiMessage(body); msg != "" {
			return fmt.Errorf("%s: %s", class, msg)
		}
		return errors.New(class)
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = body
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("not a %s API answer", c.typ)
	}
	return nil
}

func describe(err error) error {
	switch {
	case errors.Is(err, egress.ErrRefused):
		return fmt.Errorf("refused: %w", egress.ErrRefused)
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	}
	return errors.New(egress.Classify(err))
}

// apiMessage is the error message of a JSON error answer ("error",
// "message" or "errors"), cut short; "" when the body is not one.
func apiMessage(body []byte) string {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	var parts []string
	for _, k := range []string{"error", "message", "errors"} {
		switch v := m[k].(type) {
		case string:
			parts = append(parts, v)
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok {
					parts = append(parts, s)
				}
			}
		}
	}
	msg := strings.Join(parts, "; ")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}

// redact replaces every value of the Secret in err's message.
func (c *conn) redact(err error) error {
	if err == nil || len(c.secret) == 0 {
		return err
	}
	msg := err.Error()
	keys := make([]string, 0, len(c.secret))
	for k := range c.secret {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	changed := false
	for _, k := range keys {
		if v := strings.TrimSpace(string(c.secret[k])); len(v) >= 4 && k != prom.SecretAddress && strings.Contains(msg, v) {
			msg, changed = strings.ReplaceAll(msg, v, "[redacted]"), true
		}
	}
	if !changed {
		return err
	}
	return redacted{msg: msg, err: err}
}

// redacted keeps the wrapped error for errors.Is (ErrNoData, ErrRefused)
// but not its text.
type redacted struct {
	msg string
	err error
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }
