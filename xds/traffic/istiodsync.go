package traffic

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"
)

// IstiodSync tells whether the proxies connected to istiod applied what
// istiod had when a route serin wrote was accepted, from istiod's own
// record of what it sent each proxy and what each acknowledged
// (/debug/syncz on its debug or monitoring port).
//
// istiod accepts a route (its status) before it pushes the change: pushes
// are debounced. A change counts as applied once istiod pushed something
// after the acceptance and every proxy acknowledged everything it was
// sent. When no proxy was pushed within Quiet of the acceptance (none of
// them routes the Service), it counts as applied then.
type IstiodSync struct {
	// URL is istiod's debug address, e.g. http://istiod.istio-system:15014.
	URL    string
	Client *http.Client
	// Quiet bounds the wait for a push after the acceptance; istiod's
	// longest debounce (PILOT_DEBOUNCE_MAX) by default, 10s.
	Quiet time.Duration

	// One read of istiod's record serves every release that asks within
	// syncTTL: pending releases are polled often.
	mu      sync.Mutex
	read    time.Time
	proxies []syncStatus
}

// syncTTL is how long a read of istiod's record is reused.
const syncTTL = 200 * time.Millisecond

// syncStatus is one proxy in istiod's /debug/syncz.
type syncStatus struct {
	Proxy     string                    `json:"proxy"`
	Resources map[string]resourceStatus `json:"resources"`
}

type resourceStatus struct {
	Sent      string    `json:"sent"`
	Acked     string    `json:"acked"`
	SentTime  time.Time `json:"sentTime"`
	LastError string    `json:"lastError"`
}

// Synced reports whether istiod's proxies applied its configuration as of
// accepted, how many proxies are connected, and a proxy's rejection.
func (s *IstiodSync) Synced(ctx context.Context, accepted, now time.Time) (bool, int, string, error) {
	proxies, err := s.record(ctx, now)
	if err != nil {
		return false, 0, "", err
	}
	ok, rejected := synced(proxies, accepted, now, s.quiet())
	return ok, len(proxies), rejected, nil
}

// record is istiod's /debug/syncz, read at most once per syncTTL.
func (s *IstiodSync) record(ctx context.Context, now time.Time) ([]syncStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.read.IsZero() && now.Sub(s.read) < syncTTL && !now.Before(s.read) {
		return s.proxies, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/debug/syncz", nil)
	if err != nil {
		return nil, err
	}
	cl := s.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("istiod syncz: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("istiod syncz: %s", resp.Status)
	}
	var proxies []syncStatus
	if err := json.NewDecoder(resp.Body).Decode(&proxies); err != nil {
		return nil, fmt.Errorf("istiod syncz: %w", err)
	}
	s.read, s.proxies = now, proxies
	return proxies, nil
}

func (s *IstiodSync) quiet() time.Duration {
	if s.Quiet > 0 {
		return s.Quiet
	}
	return 10 * time.Second
}

// routeTypes are where a route's change reaches a proxy: its route table
// (HTTPRoute, GRPCRoute) or its listeners (TCPRoute). Clusters and
// endpoints of the Services exist before the route names them; istiod
// re-sends those on its own (endpoint changes, a client's new watch), and
// some clients acknowledge them slowly.
var routeTypes = map[string]bool{
	"type.googleapis.com/envoy.config.route.v3.RouteConfiguration": true,
	"type.googleapis.com/envoy.config.listener.v3.Listener":        true,
}

// synced is the decision of Synced on istiod's record.
func synced(proxies []syncStatus, accepted, now time.Time, quiet time.Duration) (bool, string) {
	pushed := false
	for _, p := range proxies {
		types := make([]string, 0, len(p.Resources))
		for t := range p.Resources {
			types = append(types, t)
		}
		sort.Strings(types)
		for _, t := range types {
			if !routeTypes[t] {
				continue
			}
			r := p.Resources[t]
			if r.Sent == "" || !r.SentTime.After(accepted) {
				// Sent before the route was accepted: not the change.
				continue
			}
			pushed = true
			if r.Sent != r.Acked {
				if r.LastError != "" {
					return false, fmt.Sprintf("proxy %s rejected %s from istiod: %s", p.Proxy, shortType(t), r.LastError)
				}
				return false, ""
			}
		}
	}
	return pushed || len(proxies) == 0 || now.Sub(accepted) >= quiet, ""
}
