package certs

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Default lifetimes: a CA lives five years and is replaced when less than a
// third of that remains; a serving certificate lives 90 days and is
// replaced with 30 days left.
const (
	DefaultCALifetime         = 5 * 365 * 24 * time.Hour
	DefaultCARenewBefore      = DefaultCALifetime / 3
	DefaultServingLifetime    = 90 * 24 * time.Hour
	DefaultServingRenewBefore = DefaultServingLifetime / 3
	// DefaultPropagationDelay covers the API servers' watch of the webhook
	// configurations and the other replicas' watch of the Secret.
	DefaultPropagationDelay = 10 * time.Second
)

// Policy says what certificates to make and when to replace them.
type Policy struct {
	CALifetime         time.Duration
	CARenewBefore      time.Duration
	ServingLifetime    time.Duration
	ServingRenewBefore time.Duration
	// PropagationDelay is how long a change must have been seen before the
	// next step of a rotation relies on it.
	PropagationDelay time.Duration
	// DNSNames and IPs are the serving certificate's names; the first DNS
	// name is also its common name.
	DNSNames []string
	IPs      []net.IP
}

// Validate rejects policies that would churn: a CA must outlive the
// serving certificates it signs when it is renewed, or every serving
// certificate would be cut short by the CA's end and renewed at once.
func (p Policy) Validate() error {
	var errs []error
	if p.ServingLifetime <= 0 || p.ServingRenewBefore <= 0 || p.ServingRenewBefore >= p.ServingLifetime {
		errs = append(errs, fmt.Errorf("serving renew-before %s must be positive and below the lifetime %s", p.ServingRenewBefore, p.ServingLifetime))
	}
	if p.CALifetime <= 0 || p.CARenewBefore <= 0 || p.CARenewBefore >= p.CALifetime {
		errs = append(errs, fmt.Errorf("CA renew-before %s must be positive and below the lifetime %s", p.CARenewBefore, p.CALifetime))
	}
	if p.CARenewBefore < p.ServingLifetime {
		errs = append(errs, fmt.Errorf("CA renew-before %s must be at least the serving lifetime %s", p.CARenewBefore, p.ServingLifetime))
	}
	if p.PropagationDelay < 0 {
		errs = append(errs, errors.New("propagation delay must not be negative"))
	}
	if len(p.DNSNames) == 0 && len(p.IPs) == 0 {
		errs = append(errs, errors.New("the serving certificate needs a DNS name or an IP"))
	}
	return errors.Join(errs...)
}

// Observed is what one replica knows when it decides.
type Observed struct {
	// Bundle is the Secret's content.
	Bundle Bundle
	// TrustedSince is since when this replica has seen every webhook
	// configuration trust Bundle.CAs[0]; zero while they do not.
	TrustedSince time.Time
	// ServedSince is since when this replica has seen Bundle.Cert in the
	// Secret (and served it); zero if never.
	ServedSince time.Time
}

// Action is what a Decision asks for.
type Action string

// Actions, in the order a CA rotation runs through them.
const (
	// Wait: nothing to write now; decide again at Decision.Next or on the
	// next change.
	Wait Action = "Wait"
	// Bootstrap: make a new CA and serving certificate, dropping what is
	// there (nothing usable is).
	Bootstrap Action = "Bootstrap"
	// RotateCA: make a new signing CA and keep the old one in the bundle.
	RotateCA Action = "RotateCA"
	// IssueServing: sign a new serving certificate with the signing CA.
	IssueServing Action = "IssueServing"
	// RetireCAs: drop every CA but the signing one from the bundle.
	RetireCAs Action = "RetireCAs"
)

// Decision is the result of Decide.
type Decision struct {
	Action Action
	// Reason says why, for the log.
	Reason string
	// Next is when to decide again if nothing changes first; zero when
	// only a change (a watch event) can move things on.
	Next time.Time
}

// Decide says what to do with the certificates at now. It is a pure
// function: Apply carries a decision out, and the Rotator writes the
// result.
func Decide(now time.Time, p Policy, o Observed) Decision {
	b := o.Bundle
	if len(b.CAs) == 0 || b.CAKey == nil {
		return Decision{Action: Bootstrap, Reason: "no signing CA with its key"}
	}
	ca := b.CAs[0]
	if !now.Before(ca.NotAfter) {
		return Decision{Action: Bootstrap, Reason: "the signing CA expired at " + ca.NotAfter.UTC().Format(time.RFC3339)}
	}
	if ca.NotAfter.Sub(now) < p.CARenewBefore {
		return Decision{Action: RotateCA, Reason: "the signing CA expires at " + ca.NotAfter.UTC().Format(time.RFC3339)}
	}
	if reason := servingProblem(now, p, b); reason != "" {
		if !servable(now, b) {
			// Nothing valid is served: a new certificate cannot make it worse.
			return Decision{Action: IssueServing, Reason: reason}
		}
		if o.TrustedSince.IsZero() {
			return Decision{Action: Wait, Reason: reason + "; waiting for the webhook configurations to trust the signing CA"}
		}
		if at := o.TrustedSince.Add(p.PropagationDelay); now.Before(at) {
			return Decision{Action: Wait, Reason: reason + "; waiting for the new CA to reach the API servers", Next: at}
		}
		return Decision{Action: IssueServing, Reason: reason}
	}
	if len(b.CAs) > 1 {
		if o.ServedSince.IsZero() {
			return Decision{Action: Wait, Reason: "waiting to serve the new certificate before retiring old CAs"}
		}
		if at := o.ServedSince.Add(p.PropagationDelay); now.Before(at) {
			return Decision{Action: Wait, Reason: "waiting for every replica to serve the new certificate before retiring old CAs", Next: at}
		}
		return Decision{Action: RetireCAs, Reason: "the serving certificate signed by the new CA is in use"}
	}
	next := ca.NotAfter.Add(-p.CARenewBefore)
	if at := b.Cert.NotAfter.Add(-p.ServingRenewBefore); at.Before(next) {
		next = at
	}
	return Decision{Action: Wait, Reason: "up to date", Next: next}
}

// servingProblem says why the serving certificate must be replaced, or "".
func servingProblem(now time.Time, p Policy, b Bundle) string {
	switch c := b.Cert; {
	case c == nil:
		return "no serving certificate"
	case b.Key == nil:
		return "the serving key is missing or does not match"
	case !now.Before(c.NotAfter):
		return "the serving certificate expired at " + c.NotAfter.UTC().Format(time.RFC3339)
	case c.CheckSignatureFrom(b.CAs[0]) != nil:
		return "the serving certificate is not signed by the signing CA"
	case !sameNames(c, p.DNSNames, p.IPs):
		return "the serving certificate's names changed"
	case c.NotAfter.Sub(now) < p.ServingRenewBefore:
		return "the serving certificate expires at " + c.NotAfter.UTC().Format(time.RFC3339)
	}
	return ""
}

// servable reports whether the Secret holds a serving certificate a client
// trusting the bundle would accept now.
func servable(now time.Time, b Bundle) bool {
	if b.Cert == nil || b.Key == nil || now.Before(b.Cert.NotBefore) || !now.Before(b.Cert.NotAfter) {
		return false
	}
	for _, ca := range b.CAs {
		if b.Cert.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}

func sameNames(c *x509.Certificate, names []string, ips []net.IP) bool {
	if !slices.Equal(sortedCopy(c.DNSNames), sortedCopy(names)) || len(c.IPAddresses) != len(ips) {
		return false
	}
	key := func(ip net.IP) string { return string(ip.To16()) }
	have := make([]string, 0, len(ips))
	want := make([]string, 0, len(ips))
	for i := range ips {
		have = append(have, key(c.IPAddresses[i]))
		want = append(want, key(ips[i]))
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// Apply carries out a decision: it returns the new Bundle to write, or the
// same bundle and false for Wait.
func Apply(now time.Time, p Policy, b Bundle, a Action) (Bundle, bool, error) {
	switch a {
	case Wait:
		return b, false, nil
	case Bootstrap:
		ca, caKey, err := newCA(now, p.CALifetime)
		if err != nil {
			return b, false, err
		}
		cert, key, err := newServing(now, p.ServingLifetime, ca, caKey, p.DNSNames, p.IPs)
		if err != nil {
			return b, false, err
		}
		return Bundle{CAs: []*x509.Certificate{ca}, CAKey: caKey, Cert: cert, Key: key}, true, nil
	case RotateCA:
		ca, caKey, err := newCA(now, p.CALifetime)
		if err != nil {
			return b, false, err
		}
		out := Bundle{CAs: []*x509.Certificate{ca}, CAKey: caKey, Cert: b.Cert, Key: b.Key}
		for _, old := range b.CAs {
			if now.Before(old.NotAfter) {
				out.CAs = append(out.CAs, old)
			}
		}
		return out, true, nil
	case IssueServing:
		cert, key, err := newServing(now, p.ServingLifetime, b.CAs[0], b.CAKey, p.DNSNames, p.IPs)
		if err != nil {
			return b, false, err
		}
		b.Cert, b.Key = cert, key
		return b, true, nil
	case RetireCAs:
		b.CAs = b.CAs[:1]
		return b, true, nil
	}
	return b, false, fmt.Errorf("unknown action %q", a)
}

// Trusts reports whether a PEM CA bundle contains ca.
func Trusts(bundle []byte, ca *x509.Certificate) bool {
	for _, c := range parseCerts(bundle) {
		if bytes.Equal(c.Raw, ca.Raw) {
			return true
		}
	}
	return false
}

// ServiceNames are the DNS names of a Service in a namespace; the first,
// <service>.<namespace>.svc, is the name the API server dials.
func ServiceNames(service, namespace string) []string {
	return []string{
		service + "." + namespace + ".svc",
		service,
		service + "." + namespace,
		service + "." + namespace + ".svc.cluster.local",
	}
}

// describe is a short form of a certificate for logs.
func describe(c *x509.Certificate) string {
	if c == nil {
		return "none"
	}
	return strings.Join([]string{c.Subject.CommonName, Fingerprint(c), c.NotAfter.UTC().Format(time.RFC3339)}, " ")
}
