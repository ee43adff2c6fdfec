package v1alpha1

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// AnnotationHostGrants (Namespace) lets other namespaces' Canaries claim
// hosts this namespace owns: a comma- or whitespace-separated list of
// <namespace>/<host> entries, e.g. "team-a/shop.example.com,
// team-a/*.shop.example.com". A wildcard entry grants the names under it
// and the wildcard itself; an exact entry grants that name only.
const AnnotationHostGrants = "serin.dev/host-grants"

// DefaultClusterDomain is the DNS domain of Services when none is set.
const DefaultClusterDomain = "cluster.local"

// ClaimKind ranks the objects that claim a host: a Gateway's listener
// names outrank the routes that attach to it.
type ClaimKind int

// Claim kinds, strongest first.
const (
	ClaimGateway ClaimKind = iota // Gateway API Gateway, Istio Gateway
	ClaimRoute                    // HTTPRoute, VirtualService
)

// HostClaim is a host some object in a namespace routes.
//
// +kubebuilder:object:generate=false
type HostClaim struct {
	// Host is a name or a wildcard "*.suffix".
	Host      string
	Namespace string
	Kind      ClaimKind
	// Source names the object for messages: "Gateway shop/public".
	Source string
	// Created breaks ties between route claims: the oldest wins, so a
	// newcomer cannot take a host from its current user.
	Created time.Time
}

// HostGrant lets namespace Grantee claim Host (a name or a wildcard),
// which namespace Owner owns.
//
// +kubebuilder:object:generate=false
type HostGrant struct {
	Owner, Grantee, Host string
}

// HostOwnership is everything that decides which hosts a namespace may
// claim: its own Services, the hosts Gateways and routes claim across the
// cluster, and the owners' grants.
//
// +kubebuilder:object:generate=false
type HostOwnership struct {
	// Namespace is the claiming Canary's.
	Namespace string
	// Services are the names of the Services in Namespace.
	Services []string
	// Namespaces are the cluster's namespaces (a two-label name
	// "<svc>.<ns>" belongs to namespace ns when it exists).
	Namespaces []string
	Claims     []HostClaim
	Grants     []HostGrant
	// ClusterDomain defaults to DefaultClusterDomain.
	ClusterDomain string
}

// ParseHostGrants reads the AnnotationHostGrants value of namespace owner.
func ParseHostGrants(owner, value string) ([]HostGrant, error) {
	var out []HostGrant
	var bad []string
	for _, e := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		ns, host, ok := strings.Cut(e, "/")
		if !ok || len(validation.IsDNS1123Label(ns)) > 0 || !validHostPattern(host) {
			bad = append(bad, e)
			continue
		}
		out = append(out, HostGrant{Owner: owner, Grantee: ns, Host: strings.ToLower(host)})
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("annotation %s on namespace %q: entries %q are not <namespace>/<host>", AnnotationHostGrants, owner, bad)
	}
	return out, nil
}

func validHostPattern(h string) bool {
	return h != "" && len(validation.IsDNS1123Subdomain(strings.ToLower(strings.TrimPrefix(h, "*.")))) == 0
}

// Check returns an error for each host the namespace may not claim, under
// path p (spec.service.hosts). A host is the namespace's when it is a
// name of its own Services (or in its Services' DNS zone), or when the
// strongest claim on it (the most specific pattern; a Gateway before a
// route; the oldest) is in the namespace. Otherwise only a grant from the
// owner allows it. A host nobody claims is denied: taking it first would
// let any namespace squat names before their owner routes them.
func (o HostOwnership) Check(hosts []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, h := range hosts {
		if msg := o.deny(strings.ToLower(h)); msg != "" {
			errs = append(errs, field.Forbidden(p.Index(i), msg))
		}
	}
	return errs
}

// Allowed filters hosts down to those the namespace may claim.
func (o HostOwnership) Allowed(hosts []string) (allowed, denied []string) {
	for _, h := range hosts {
		if o.deny(strings.ToLower(h)) == "" {
			allowed = append(allowed, h)
		} else {
			denied = append(denied, h)
		}
	}
	return allowed, denied
}

// deny is why the namespace may not claim host h, or "".
func (o HostOwnership) deny(h string) string {
	owner, source := o.zoneOwner(h)
	if owner == "" {
		if c, ok := o.strongestClaim(h); ok {
			owner, source = c.Namespace, c.Source
		}
	}
	switch {
	case owner == o.Namespace:
		return ""
	case owner == "":
		return fmt.Sprintf("host %q is not a name of a Service in namespace %q, and no Gateway, HTTPRoute or VirtualService routes it; "+
			"add it to a Gateway or route in %q first", h, o.Namespace, o.Namespace)
	case o.granted(owner, h):
		return ""
	}
	return fmt.Sprintf("host %q belongs to namespace %q (%s); ask its owner for a grant (annotation %s: %q on namespace %q)",
		h, owner, source, AnnotationHostGrants, o.Namespace+"/"+h, owner)
}

// zoneOwner is the namespace whose Service DNS names include h:
// <svc>.<ns>.svc[.<domain>] (and wildcards in that zone) always,
// <svc>.<ns> when ns is a namespace, and a single label when it is a
// Service of the claiming namespace.
func (o HostOwnership) zoneOwner(h string) (owner, source string) {
	domain := cmp.Or(o.ClusterDomain, DefaultClusterDomain)
	if name, ok := strings.CutSuffix(strings.TrimSuffix(h, "."+domain), ".svc"); ok {
		if labels := strings.Split(name, "."); len(labels) >= 2 {
			return labels[len(labels)-1], "its Service DNS zone"
		}
		return "", ""
	}
	labels := strings.Split(h, ".")
	switch {
	case len(labels) == 1 && slices.Contains(o.Services, h):
		return o.Namespace, "its Service " + h
	case len(labels) == 2 && labels[1] == o.Namespace:
		if slices.Contains(o.Services, labels[0]) {
			return o.Namespace, "its Service " + labels[0]
		}
	case len(labels) == 2 && slices.Contains(o.Namespaces, labels[1]):
		return labels[1], "its Service DNS zone"
	}
	return "", ""
}

// strongestClaim is the claim that owns h, if any claims it.
func (o HostOwnership) strongestClaim(h string) (HostClaim, bool) {
	var covering []HostClaim
	for _, c := range o.Claims {
		if c.Host != "*" && covers(strings.ToLower(c.Host), h) {
			covering = append(covering, c)
		}
	}
	if len(covering) == 0 {
		return HostClaim{}, false
	}
	return slices.MinFunc(covering, func(a, b HostClaim) int {
		return cmp.Or(
			-cmp.Compare(specificity(a.Host), specificity(b.Host)),
			cmp.Compare(a.Kind, b.Kind),
			a.Created.Compare(b.Created),
			cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Source, b.Source),
		)
	}), true
}

func (o HostOwnership) granted(owner, h string) bool {
	return slices.ContainsFunc(o.Grants, func(g HostGrant) bool {
		return g.Owner == owner && g.Grantee == o.Namespace && covers(g.Host, h)
	})
}

// covers reports whether pattern p (a name or "*.suffix") includes host h
// (a name or a wildcard): a wildcard includes the names and wildcards
// below it, never its own suffix.
func covers(p, h string) bool {
	if p == h {
		return true
	}
	suffix, ok := strings.CutPrefix(p, "*.")
	if !ok {
		return false
	}
	return strings.HasSuffix(strings.TrimPrefix(h, "*."), "."+suffix)
}

// specificity orders patterns: an exact name beats any wildcard, a longer
// wildcard suffix beats a shorter one.
func specificity(p string) int {
	if suffix, ok := strings.CutPrefix(p, "*."); ok {
		return len(suffix)
	}
	return 1 << 20
}
