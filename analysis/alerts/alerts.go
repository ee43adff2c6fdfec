// Package alerts sends release notifications to the AlertProviders a
// Canary lists in analysis.alerts: Slack (incoming webhook with an
// attachment), Microsoft Teams (Workflows webhook with an Adaptive Card),
// Discord (webhook with an embed) and a generic JSON webhook. Each alert
// has a lowest severity (info < warn < error) and only gets messages at
// or above it. A provider's webhook URL comes from its spec or, when it
// has a secretRef, from the Secret's "address" key — a webhook URL is a
// credential, so it never appears in errors or logs. A Secret's address is
// the only place the alert goes: the Secret names its own destination.
//
// Every request goes through the egress guard (internal/egress): loopback,
// link-local, metadata and API server addresses are refused unless the
// admin allowed them, redirects are refused and no proxy is used. A failed
// alert is reported by class ("rejected (4xx)", "refused: address not
// allowed"), never with the receiver's answer.
package alerts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/egress"
)

// SecretAddressKey is the Secret key that holds a provider's webhook URL.
const SecretAddressKey = "address"

// DefaultTimeout bounds one notification when the context has no earlier
// deadline.
const DefaultTimeout = 10 * time.Second

// SecretReader reads the data of a Secret.
type SecretReader interface {
	Secret(ctx context.Context, namespace, name string) (map[string][]byte, error)
}

// ProviderGetter reads AlertProviders.
type ProviderGetter interface {
	AlertProvider(ctx context.Context, namespace, name string) (*v1alpha1.AlertProvider, error)
}

// Field is one named value shown with a message.
type Field struct {
	Name, Value string
}

// Message is one notification about a release.
type Message struct {
	// Name and Namespace of the Canary.
	Name, Namespace string
	Phase           v1alpha1.CanaryPhase
	// Severity defaults to info.
	Severity v1alpha1.AlertSeverity
	// Text is the event's one-line message.
	Text string
	// Fields are shown in order (e.g. Target, Weight, Failed checks).
	Fields []Field
	// Time stamps the generic payload (default now).
	Time time.Time
}

// Notifier sends messages to alert providers. It is safe for concurrent
// use; the zero value has no providers or secrets.
type Notifier struct {
	Providers ProviderGetter
	Secrets   SecretReader
	// Egress is the policy every alert's connection is checked against.
	Egress egress.Policy
	// Log is used when the context carries no logger.
	Log logr.Logger

	once   sync.Once
	client *http.Client
}

// httpClient is the guarded client, built on first use: a 10s timeout, no
// redirects, no proxy.
func (n *Notifier) httpClient() *http.Client {
	n.once.Do(func() {
		n.client = egress.Client((&egress.Dialer{Policy: n.Egress}).Transport(false), DefaultTimeout)
	})
	return n.client
}

// rank orders severities; unknown ones rank as info.
func rank(s v1alpha1.AlertSeverity) int {
	switch s {
	case v1alpha1.SeverityWarn:
		return 1
	case v1alpha1.SeverityError:
		return 2
	default:
		return 0
	}
}

// Allows reports whether an alert whose lowest severity is min gets a
// message of severity sev.
func Allows(min, sev v1alpha1.AlertSeverity) bool { return rank(sev) >= rank(min) }

// Notify sends m to every alert of the Canary that allows its severity.
// Providers without a namespace are looked up in the Canary's. Every
// alert is tried; the errors are joined, each naming its alert.
func (n *Notifier) Notify(ctx context.Context, c *v1alpha1.Canary, m Message) error {
	if c.Spec.Analysis == nil {
		return nil
	}
	var errs []error
	for _, a := range c.Spec.Analysis.Alerts {
		if !Allows(a.Severity, m.Severity) {
			continue
		}
		ns := a.ProviderRef.Namespace
		if ns == "" {
			ns = c.Namespace
		}
		if n.Providers == nil {
			errs = append(errs, fmt.Errorf("alert %s: no AlertProvider reader configured", a.Name))
			continue
		}
		p, err := n.Providers.AlertProvider(ctx, ns, a.ProviderRef.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("alert %s: provider %s/%s: %w", a.Name, ns, a.ProviderRef.Name, err))
			continue
		}
		if err := n.Send(ctx, p, m); err != nil {
			errs = append(errs, fmt.Errorf("alert %s: %w", a.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Send sends m to one provider.
func (n *Notifier) Send(ctx context.Context, p *v1alpha1.AlertProvider, m Message) error {
	address, err := n.address(ctx, p)
	if err != nil {
		return err
	}
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	body, err := Payload(p.Spec, m)
	if err != nil {
		return err
	}
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, address, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s provider %s/%s: bad address", p.Spec.Type, p.Namespace, p.Name)
	}
	req.Header.Set("Content-Type", "application/json")
	log := n.Log
	if l, err := logr.FromContext(ctx); err == nil {
		log = l
	}
	resp, err := n.httpClient().Do(req)
	if err != nil {
		// The text of a transport error may hold the URL or the address
		// it resolved to: only the class is told.
		return fmt.Errorf("%s provider %s/%s: %s", p.Spec.Type, p.Namespace, p.Name, egress.Classify(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return fmt.Errorf("%s provider %s/%s answered %d: %s", p.Spec.Type, p.Namespace, p.Name, resp.StatusCode, egress.StatusClass(resp.StatusCode))
	}
	log.V(1).Info("alert sent", "provider", p.Namespace+"/"+p.Name, "type", string(p.Spec.Type),
		"canary", m.Name+"."+m.Namespace, "severity", string(m.Severity))
	return nil
}

func (n *Notifier) address(ctx context.Context, p *v1alpha1.AlertProvider) (string, error) {
	address := p.Spec.Address
	if p.Spec.SecretRef != nil && p.Spec.SecretRef.Name != "" {
		if n.Secrets == nil {
			return "", fmt.Errorf("provider %s/%s: no secret reader configured", p.Namespace, p.Name)
		}
		data, err := n.Secrets.Secret(ctx, p.Namespace, p.Spec.SecretRef.Name)
		if err != nil {
			return "", fmt.Errorf("provider %s/%s secret %s: %w", p.Namespace, p.Name, p.Spec.SecretRef.Name, err)
		}
		address = string(bytes.TrimSpace(data[SecretAddressKey]))
		if address == "" {
			return "", fmt.Errorf("provider %s/%s secret %s has no %q key", p.Namespace, p.Name, p.Spec.SecretRef.Name, SecretAddressKey)
		}
	}
	u, err := url.Parse(address)
	if address == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("provider %s/%s has no http(s) webhook address", p.Namespace, p.Name)
	}
	return address, nil
}
