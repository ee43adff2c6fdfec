package traffic

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestIstiodSynced: a route istiod accepted counts as applied once istiod
// pushed after the acceptance and every proxy acknowledged all it was
// sent; a proxy's rejection is reported; with no push (no proxy routes
// the Service) it counts after the quiet period.
func TestIstiodSynced(t *testing.T) {
	at := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	rds := "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	proxy := func(sent, acked string, sentAt time.Time, lastErr string) syncStatus {
		return syncStatus{Proxy: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local", Resources: map[string]resourceStatus{
			rds: {Sent: sent, Acked: acked, SentTime: sentAt, LastError: lastErr},
		}}
	}
	for name, tc := range map[string]struct {
		proxies  []syncStatus
		now      time.Time
		want     bool
		rejected string
	}{
		"no proxies":            {nil, at, true, ""},
		"not pushed yet":        {[]syncStatus{proxy("v1", "v1", at.Add(-time.Second), "")}, at.Add(time.Second), false, ""},
		"pushed, not acked":     {[]syncStatus{proxy("v2", "v1", at.Add(time.Second), "")}, at.Add(2 * time.Second), false, ""},
		"pushed and acked":      {[]syncStatus{proxy("v2", "v2", at.Add(time.Second), "")}, at.Add(2 * time.Second), true, ""},
		"rejected":              {[]syncStatus{proxy("v2", "v1", at.Add(time.Second), "invalid route")}, at.Add(2 * time.Second), false, "rejected RouteConfiguration from istiod: invalid route"},
		"quiet: nobody to push": {[]syncStatus{proxy("v1", "v1", at.Add(-time.Second), "")}, at.Add(11 * time.Second), true, ""},
		"one of two in flight": {[]syncStatus{proxy("v2", "v2", at.Add(time.Second), ""), proxy("v2", "v1", at.Add(time.Second), "")},
			at.Add(2 * time.Second), false, ""},
	} {
		t.Run(name, func(t *testing.T) {
			ok, rej := synced(tc.proxies, at, tc.now, 10*time.Second)
			if ok != tc.want || !strings.Contains(rej, tc.rejected) || (tc.rejected == "") != (rej == "") {
				t.Fatalf("synced = %t %q, want %t %q", ok, rej, tc.want, tc.rejected)
			}
		})
	}
	reads := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reads++
		if r.URL.Path != "/debug/syncz" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode([]syncStatus{proxy("v2", "v2", at.Add(time.Second), "")})
	}))
	defer srv.Close()
	s := &IstiodSync{URL: srv.URL}
	ok, n, rej, err := s.Synced(context.Background(), at, at.Add(2*time.Second))
	if err != nil || !ok || n != 1 || rej != "" {
		t.Fatalf("Synced over HTTP: %t %d %q %v", ok, n, rej, err)
	}
	// Releases that ask within syncTTL share one read.
	_, _, _, _ = s.Synced(context.Background(), at, at.Add(2*time.Second+syncTTL/2))
	_, _, _, _ = s.Synced(context.Background(), at, at.Add(2*time.Second+syncTTL))
	if reads != 2 {
		t.Fatalf("%d reads of istiod's record, want 2", reads)
	}
}
