package v1alpha1

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestHostOwnership(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	world := HostOwnership{
		Namespace:  "a",
		Services:   []string{"web", "api"},
		Namespaces: []string{"a", "b", "shop", "com"},
		Claims: []HostClaim{
			{Host: "shop.example.com", Namespace: "shop", Kind: ClaimGateway, Source: "Gateway shop/public", Created: t0},
			{Host: "*.shop.example.com", Namespace: "shop", Kind: ClaimGateway, Source: "Gateway shop/public", Created: t0},
			{Host: "a.shop.example.com", Namespace: "a", Kind: ClaimRoute, Source: "VirtualService a/mine", Created: t0},
			{Host: "web.example.com", Namespace: "a", Kind: ClaimRoute, Source: "HTTPRoute a/web", Created: t0},
			{Host: "web.example.com", Namespace: "b", Kind: ClaimRoute, Source: "VirtualService b/squat", Created: t0.Add(time.Hour)},
			{Host: "old.example.com", Namespace: "b", Kind: ClaimRoute, Source: "VirtualService b/old", Created: t0},
			{Host: "old.example.com", Namespace: "a", Kind: ClaimRoute, Source: "VirtualService a/new", Created: t0.Add(time.Hour)},
			{Host: "ingress.example.com", Namespace: "b", Kind: ClaimGateway, Source: "Gateway b/edge", Created: t0.Add(time.Hour)},
			{Host: "ingress.example.com", Namespace: "a", Kind: ClaimRoute, Source: "VirtualService a/ingress", Created: t0},
			{Host: "*.a-team.example.com", Namespace: "a", Kind: ClaimGateway, Source: "Gateway a/team", Created: t0},
			{Host: "*", Namespace: "a", Kind: ClaimRoute, Source: "VirtualService a/all", Created: t0},
		},
		Grants: []HostGrant{
			{Owner: "shop", Grantee: "a", Host: "cart.shop.example.com"},
			{Owner: "b", Grantee: "a", Host: "*.grant.b.svc.cluster.local"},
			{Owner: "b", Grantee: "a", Host: "shop.example.com"}, // b does not own it
			{Owner: "shop", Grantee: "c", Host: "*.shop.example.com"},
		},
	}
	for _, tt := range []struct {
		host string
		deny string // substring of the reason; "" means allowed
	}{
		// Its own Services' names, in every form DNS gives them.
		{"web", ""},
		{"web.a", ""},
		{"web.a.svc", ""},
		{"web.a.svc.cluster.local", ""},
		{"WEB.A.SVC.CLUSTER.LOCAL", ""},
		{"other.a.svc.cluster.local", ""},
		// Another namespace's Service names.
		{"web.b", `belongs to namespace "b" (its Service DNS zone)`},
		{"web.b.svc", `belongs to namespace "b"`},
		{"web.b.svc.cluster.local", `belongs to namespace "b"`},
		{"*.b.svc.cluster.local", `belongs to namespace "b"`},
		{"x.grant.b.svc.cluster.local", ""}, // granted
		{"grant.b.svc.cluster.local", `belongs to namespace "b"`},
		// A bare name that is not one of its Services, a name that only
		// looks like a Service name.
		{"db", `is not a name of a Service in namespace "a"`},
		{"web.cluster.local", `is not a name of a Service`},
		{"example.com", `belongs to namespace "com"`},
		// Gateway claims.
		{"shop.example.com", `belongs to namespace "shop" (Gateway shop/public); ask its owner for a grant (annotation serin.dev/host-grants: "a/shop.example.com" on namespace "shop")`},
		{"x.shop.example.com", `belongs to namespace "shop" (Gateway shop/public)`},
		{"*.shop.example.com", `belongs to namespace "shop"`},
		{"a.shop.example.com", ""}, // more specific than shop's wildcard
		{"cart.shop.example.com", ""},
		{"x.a-team.example.com", ""},
		{"*.a-team.example.com", ""},
		{"*.x.a-team.example.com", ""},
		{"a-team.example.com", `is not a name of a Service`},
		// Route claims: the oldest wins; a Gateway beats a route.
		{"web.example.com", ""},
		{"old.example.com", `belongs to namespace "b" (VirtualService b/old)`},
		{"ingress.example.com", `belongs to namespace "b" (Gateway b/edge)`},
		// Nobody claims it; "*" claims nothing.
		{"free.example.org", `no Gateway, HTTPRoute or VirtualService routes it`},
	} {
		t.Run(tt.host, func(t *testing.T) {
			errs := world.Check([]string{tt.host}, field.NewPath("spec", "service", "hosts"))
			switch {
			case tt.deny == "" && len(errs) > 0:
				t.Fatalf("denied: %v", errs)
			case tt.deny != "" && len(errs) != 1:
				t.Fatalf("errors %v, want one containing %q", errs, tt.deny)
			case tt.deny != "" && !strings.Contains(errs[0].Error(), tt.deny):
				t.Fatalf("error %q, want it to contain %q", errs[0].Error(), tt.deny)
			case tt.deny != "" && !strings.HasPrefix(errs[0].Error(), "spec.service.hosts[0]: Forbidden: "):
				t.Fatalf("error %q does not name the field", errs[0].Error())
			}
		})
	}
}

func TestHostOwnershipGrants(t *testing.T) {
	grants, err := ParseHostGrants("b", "a/*.grant.b.svc.cluster.local, c/ok.example.com\nd/Wild.Example.com")
	if err != nil {
		t.Fatal(err)
	}
	o := HostOwnership{Namespace: "a", Namespaces: []string{"a", "b"}, Grants: grants}
	allowed, denied := o.Allowed([]string{"x.grant.b.svc.cluster.local", "*.grant.b.svc.cluster.local", "grant.b.svc.cluster.local", "web.b"})
	if strings.Join(allowed, ",") != "x.grant.b.svc.cluster.local,*.grant.b.svc.cluster.local" ||
		strings.Join(denied, ",") != "grant.b.svc.cluster.local,web.b" {
		t.Fatalf("allowed %v denied %v", allowed, denied)
	}
	if grants[2].Host != "wild.example.com" {
		t.Errorf("hosts are not lower-cased: %+v", grants[2])
	}
	for _, bad := range []string{"no-namespace.example.com", "a/", "A_B/x.example.com", "a/bad host", "a/x..y"} {
		if _, err := ParseHostGrants("b", bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
