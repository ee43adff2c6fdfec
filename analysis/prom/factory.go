package prom

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/egress"
)

// ProviderSecret is what the factory needs of a Secret: its data and its
// annotations (where the Secret may name the addresses its credentials
// may go to).
type ProviderSecret struct {
	Data        map[string][]byte
	Annotations map[string]string
}

// SecretReader reads provider Secrets. The caller wires it to its
// Kubernetes client (or cache).
type SecretReader interface {
	ProviderSecret(ctx context.Context, namespace, name string) (ProviderSecret, error)
}

// Secret keys of a provider's Secret (Flagger's, plus address).
const (
	SecretUsername = "username"
	SecretPassword = "password"
	SecretToken    = "token"
	// SecretAddress, when set, is the Prometheus the credentials belong
	// to: the only address they are sent to, and the provider's address
	// when the template has none.
	SecretAddress = "address"
)

// maxCachedClients bounds the client cache; past it the cache is emptied
// (clients are cheap; connections are what the cache saves).
const maxCachedClients = 64

// Factory builds clients for MetricProviders: the provider's address, or
// Default's, and credentials from the provider's Secret (read on every
// call, so a rotated Secret takes effect at the next check). Clients are
// cached by address and credentials. The zero Factory has no default.
//
// A Secret's credentials go only where the Secret says (see Bind): the
// template's author chooses the address but may not be allowed to read
// the Secret, so serin must not carry its token to an address of the
// author's choosing. The Secret is always read in the template's own
// namespace.
type Factory struct {
	// Default is used for built-in metrics and for providers without an
	// address (serin's --prometheus-address and its credentials).
	Default Config
	// Secrets reads provider Secrets; nil refuses providers with a
	// secretRef.
	Secrets SecretReader
	// Egress is the policy every connection is checked against.
	Egress egress.Policy

	mu         sync.Mutex
	clients    map[string]*Client
	transports map[bool]*http.Transport
}

// Client returns the client for a provider whose Secret lives in
// namespace; a nil provider means the default.
func (f *Factory) Client(ctx context.Context, namespace string, p *v1alpha1.MetricProvider) (*Client, error) {
	cfg := f.Default
	if p != nil {
		if p.Type != "" && p.Type != v1alpha1.ProviderPrometheus {
			return nil, fmt.Errorf("metric provider type %q is not supported", p.Type)
		}
		if p.Address != "" {
			cfg = Config{Address: p.Address}
		}
		cfg.InsecureSkipVerify = cfg.InsecureSkipVerify || p.InsecureSkipVerify
		if len(p.Headers) > 0 {
			cfg.Headers = http.Header(p.Headers)
		}
		if p.SecretRef != nil && p.SecretRef.Name != "" {
			var err error
			if cfg, err = f.withSecret(ctx, namespace, p, cfg); err != nil {
				return nil, err
			}
		}
	}
	if cfg.Address == "" {
		return nil, ErrNoAddress
	}
	return f.cached(cfg)
}

func (f *Factory) cached(cfg Config) (*Client, error) {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s\x00%t\x00%s", cfg.Address, cfg.Username, cfg.Password,
		cfg.BearerToken, cfg.InsecureSkipVerify, headerKey(cfg.Headers)))
	key := hex.EncodeToString(sum[:])
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[key]; ok {
		return c, nil
	}
	if f.clients == nil || len(f.clients) >= maxCachedClients {
		f.clients = map[string]*Client{}
	}
	if f.transports == nil {
		f.transports = map[bool]*http.Transport{}
	}
	tr, ok := f.transports[cfg.InsecureSkipVerify]
	if !ok {
		tr = newTransport(f.Egress, cfg.InsecureSkipVerify)
		f.transports[cfg.InsecureSkipVerify] = tr
	}
	c, err := newWithTransport(cfg, tr)
	if err != nil {
		return nil, err
	}
	f.clients[key] = c
	return c, nil
}

// withSecret adds the credentials of p's Secret (in namespace) to cfg,
// once the Secret has allowed them to go to cfg's address.
func (f *Factory) withSecret(ctx context.Context, namespace string, p *v1alpha1.MetricProvider, cfg Config) (Config, error) {
	name := p.SecretRef.Name
	if f.Secrets == nil {
		return cfg, fmt.Errorf("provider secret %s/%s: no secret reader configured", namespace, name)
	}
	sec, err := f.Secrets.ProviderSecret(ctx, namespace, name)
	if err != nil {
		return cfg, fmt.Errorf("provider secret %s/%s: %w", namespace, name, err)
	}
	if p.Address == "" {
		if a := string(sec.Data[SecretAddress]); a != "" {
			cfg.Address = a
		}
	}
	if err := Bind(sec, cfg.Address); err != nil {
		return cfg, fmt.Errorf("provider secret %s/%s: %w", namespace, name, err)
	}
	cfg.Username, cfg.Password, cfg.BearerToken = string(sec.Data[SecretUsername]), string(sec.Data[SecretPassword]), string(sec.Data[SecretToken])
	if cfg.BearerToken == "" && cfg.Username == "" {
		return cfg, fmt.Errorf("provider secret %s/%s has neither %q nor %q and %q", namespace, name,
			SecretToken, SecretUsername, SecretPassword)
	}
	return cfg, nil
}

// headerKey writes headers in a canonical, sorted form for the cache key.
func headerKey(h http.Header) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%q:%q\n", k, h[k])
	}
	return b.String()
}
