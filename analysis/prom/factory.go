package prom

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// SecretReader reads the data of a Secret. The caller wires it to its
// Kubernetes client (or cache).
type SecretReader interface {
	Secret(ctx context.Context, namespace, name string) (map[string][]byte, error)
}

// Secret keys of a provider's Secret.
const (
	SecretUsername = "username"
	SecretPassword = "password"
	SecretToken    = "token"
)

// maxCachedClients bounds the client cache; past it the cache is emptied
// (clients are cheap; connections are what the cache saves).
const maxCachedClients = 64

// Factory builds clients for MetricProviders: the provider's address, or
// Default's, and credentials from the provider's Secret (read on every
// call, so a rotated Secret takes effect at the next check). Clients are
// cached by address and credentials. The zero Factory has no default.
type Factory struct {
	// Default is used for built-in metrics and for providers without an
	// address (serin's --prometheus-address and its credentials).
	Default Config
	// Secrets reads provider Secrets; nil refuses providers with a
	// secretRef.
	Secrets SecretReader

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
		if p.SecretRef != nil && p.SecretRef.Name != "" {
			if f.Secrets == nil {
				return nil, fmt.Errorf("provider secret %s/%s: no secret reader configured", namespace, p.SecretRef.Name)
			}
			data, err := f.Secrets.Secret(ctx, namespace, p.SecretRef.Name)
			if err != nil {
				return nil, fmt.Errorf("provider secret %s/%s: %w", namespace, p.SecretRef.Name, err)
			}
			cfg.Username, cfg.Password, cfg.BearerToken = string(data[SecretUsername]), string(data[SecretPassword]), string(data[SecretToken])
			if cfg.BearerToken == "" && cfg.Username == "" {
				return nil, fmt.Errorf("provider secret %s/%s has neither %q nor %q and %q", namespace, p.SecretRef.Name,
					SecretToken, SecretUsername, SecretPassword)
			}
		}
	}
	if cfg.Address == "" {
		return nil, ErrNoAddress
	}
	return f.cached(cfg)
}

func (f *Factory) cached(cfg Config) (*Client, error) {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s\x00%t", cfg.Address, cfg.Username, cfg.Password, cfg.BearerToken, cfg.InsecureSkipVerify))
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
		tr = newTransport(cfg.InsecureSkipVerify)
		f.transports[cfg.InsecureSkipVerify] = tr
	}
	c, err := newWithTransport(cfg, tr)
	if err != nil {
		return nil, err
	}
	f.clients[key] = c
	return c, nil
}
