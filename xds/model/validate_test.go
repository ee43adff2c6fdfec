package model

import (
	"strings"
	"testing"
)

func validRelease() *Release {
	return &Release{
		Namespace: "test", Service: "web", Port: 80, Protocol: HTTP,
		Stable: TrackEndpoints{Revision: "a", Endpoints: []Endpoint{{IP: "10.0.0.1", Port: 80, Ready: true}}},
	}
}

func TestValidateRoutingFields(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	tests := []struct {
		name   string
		mutate func(*Release)
		want   string
	}{
		{"valid", func(r *Release) {
			r.SessionAffinity = &SessionAffinity{CookieName: "c", PrimaryCookieName: "p", Path: "/app", Domain: ".example.com", SameSite: "Lax"}
			r.LoadBalancer = &LoadBalancer{Policy: RingHash, Hash: &HashPolicy{Cookie: &HashCookie{Name: "user"}}}
			r.CORS = &CORS{AllowOrigins: []StringMatch{{Prefix: "https://"}}}
			r.ServiceMatch = []RequestMatch{{Authority: &StringMatch{Exact: "a"}}}
		}, ""},
		{"primary cookie equal to the cookie", func(r *Release) {
			r.SessionAffinity = &SessionAffinity{CookieName: "c", PrimaryCookieName: "c"}
		}, "primaryCookieName"},
		{"cookie path with a separator", func(r *Release) {
			r.SessionAffinity = &SessionAffinity{CookieName: "c", Path: "/a; Secure"}
		}, "path"},
		{"cookie domain with a formatter", func(r *Release) {
			r.SessionAffinity = &SessionAffinity{CookieName: "c", Domain: "%REQ(host)%"}
		}, "domain"},
		{"unknown SameSite", func(r *Release) {
			r.SessionAffinity = &SessionAffinity{CookieName: "c", SameSite: "Sometimes"}
		}, "sameSite"},
		{"ring hash without a hash", func(r *Release) { r.LoadBalancer = &LoadBalancer{Policy: RingHash} }, "hash"},
		{"hash on two keys", func(r *Release) {
			r.LoadBalancer = &LoadBalancer{Policy: RingHash, Hash: &HashPolicy{Header: "x", SourceIP: true}}
		}, "exactly one"},
		{"hash with round robin", func(r *Release) {
			r.LoadBalancer = &LoadBalancer{Policy: RoundRobin, Hash: &HashPolicy{Header: "x"}}
		}, "RING_HASH"},
		{"warmup with random", func(r *Release) { r.LoadBalancer = &LoadBalancer{Policy: Random, Warmup: 1} }, "warmup"},
		{"unknown policy", func(r *Release) { r.LoadBalancer = &LoadBalancer{Policy: "MAGLEV"} }, "policy"},
		{"ejection above 100%", func(r *Release) { r.OutlierDetection = &OutlierDetection{MaxEjectionPercent: u(101)} }, "maxEjectionPercent"},
		{"CORS origin present", func(r *Release) { r.CORS = &CORS{AllowOrigins: []StringMatch{{Present: true}}} }, "allowOrigins[0]"},
		{"TCP with CORS", func(r *Release) { r.Protocol = TCP; r.CORS = &CORS{} }, "TCP"},
		{"TCP with a service match", func(r *Release) {
			r.Protocol = TCP
			r.ServiceMatch = []RequestMatch{{Authority: &StringMatch{Exact: "a"}}}
		}, "TCP"},
		{"empty service match", func(r *Release) { r.ServiceMatch = []RequestMatch{{IgnoreURICase: true}} }, "serviceMatch[0]"},
		{"withoutHeaders without a name", func(r *Release) {
			r.Match = []RequestMatch{{WithoutHeaders: []StringMatch{{Present: true}}}}
		}, "withoutHeaders[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := validRelease()
			tc.mutate(r)
			err := r.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
