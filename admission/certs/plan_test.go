package certs

import (
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testPolicy() Policy {
	return Policy{
		CALifetime: 60 * time.Second, CARenewBefore: 30 * time.Second,
		ServingLifetime: 30 * time.Second, ServingRenewBefore: 10 * time.Second,
		PropagationDelay: 3 * time.Second,
		DNSNames:         ServiceNames("serin-webhook", "serin-system"),
		IPs:              []net.IP{net.ParseIP("127.0.0.1")},
	}
}

func mustApply(t *testing.T, now time.Time, p Policy, b Bundle, a Action) Bundle {
	t.Helper()
	out, changed, err := Apply(now, p, b, a)
	if err != nil || !changed {
		t.Fatalf("Apply(%s) = changed %v, %v", a, changed, err)
	}
	return out
}

func TestDecide(t *testing.T) {
	p := testPolicy()
	fresh := mustApply(t, t0, p, Bundle{}, Bootstrap)
	renewed := mustApply(t, t0.Add(25*time.Second), p, fresh, IssueServing)
	rotated := mustApply(t, t0.Add(31*time.Second), p, renewed, RotateCA) // old serving cert, new CA first
	reissued := mustApply(t, t0.Add(35*time.Second), p, rotated, IssueServing)
	otherNames := p
	otherNames.IPs = nil
	noKey := fresh
	noKey.Key = nil
	noCAKey := fresh
	noCAKey.CAKey = nil

	tests := []struct {
		name        string
		now         time.Time
		p           Policy
		o           Observed
		want        Action
		wantNext    time.Time
		wantInReply string
	}{
		{name: "empty secret", now: t0, p: p, o: Observed{}, want: Bootstrap, wantInReply: "no signing CA"},
		{name: "CA key lost", now: t0, p: p, o: Observed{Bundle: noCAKey}, want: Bootstrap},
		{name: "CA expired", now: t0.Add(61 * time.Second), p: p, o: Observed{Bundle: fresh}, want: Bootstrap, wantInReply: "expired"},
		{name: "fresh: wait for serving renewal", now: t0.Add(time.Second), p: p,
			o: Observed{Bundle: fresh, TrustedSince: t0, ServedSince: t0}, want: Wait, wantNext: t0.Add(20 * time.Second)},
		{name: "serving due, CA trusted long enough", now: t0.Add(21 * time.Second), p: p,
			o: Observed{Bundle: fresh, TrustedSince: t0, ServedSince: t0}, want: IssueServing, wantInReply: "expires"},
		{name: "serving due, CA not yet trusted: wait for the event", now: t0.Add(21 * time.Second), p: p,
			o: Observed{Bundle: fresh, ServedSince: t0}, want: Wait, wantInReply: "trust"},
		{name: "serving due, CA trusted only just", now: t0.Add(21 * time.Second), p: p,
			o: Observed{Bundle: fresh, TrustedSince: t0.Add(20 * time.Second), ServedSince: t0}, want: Wait, wantNext: t0.Add(23 * time.Second)},
		{name: "serving key lost: issue at once", now: t0.Add(time.Second), p: p,
			o: Observed{Bundle: noKey}, want: IssueServing, wantInReply: "key"},
		{name: "names changed", now: t0.Add(time.Second), p: otherNames,
			o: Observed{Bundle: fresh, TrustedSince: t0, ServedSince: t0}, want: Wait, wantNext: t0.Add(3 * time.Second), wantInReply: "names"},
		{name: "names changed, trusted", now: t0.Add(4 * time.Second), p: otherNames,
			o: Observed{Bundle: fresh, TrustedSince: t0, ServedSince: t0}, want: IssueServing},
		{name: "CA due", now: t0.Add(31 * time.Second), p: p,
			o: Observed{Bundle: fresh, TrustedSince: t0, ServedSince: t0}, want: RotateCA},
		{name: "after CA rotation: old serving cert waits for trust", now: t0.Add(32 * time.Second), p: p,
			o: Observed{Bundle: rotated, TrustedSince: t0.Add(31 * time.Second), ServedSince: t0}, want: Wait, wantNext: t0.Add(34 * time.Second), wantInReply: "not signed by the signing CA"},
		{name: "after CA rotation: new CA trusted, reissue", now: t0.Add(34 * time.Second), p: p,
			o: Observed{Bundle: rotated, TrustedSince: t0.Add(31 * time.Second), ServedSince: t0}, want: IssueServing},
		{name: "old CA kept while the new certificate propagates", now: t0.Add(36 * time.Second), p: p,
			o: Observed{Bundle: reissued, TrustedSince: t0.Add(31 * time.Second), ServedSince: t0.Add(35 * time.Second)}, want: Wait, wantNext: t0.Add(38 * time.Second)},
		{name: "old CA kept until this replica serves the new certificate", now: t0.Add(36 * time.Second), p: p,
			o: Observed{Bundle: reissued, TrustedSince: t0.Add(31 * time.Second)}, want: Wait, wantNext: time.Time{}},
		{name: "old CA retired", now: t0.Add(38 * time.Second), p: p,
			o: Observed{Bundle: reissued, TrustedSince: t0.Add(31 * time.Second), ServedSince: t0.Add(35 * time.Second)}, want: RetireCAs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.now, tt.p, tt.o)
			if d.Action != tt.want {
				t.Fatalf("action = %s (%s), want %s", d.Action, d.Reason, tt.want)
			}
			if tt.want == Wait && !d.Next.Equal(tt.wantNext) {
				t.Errorf("next = %s, want %s", d.Next, tt.wantNext)
			}
			if !strings.Contains(d.Reason, tt.wantInReply) {
				t.Errorf("reason %q does not mention %q", d.Reason, tt.wantInReply)
			}
		})
	}
}

func TestApply(t *testing.T) {
	p := testPolicy()
	b := mustApply(t, t0, p, Bundle{}, Bootstrap)
	if len(b.CAs) != 1 || b.Cert.CheckSignatureFrom(b.CAs[0]) != nil {
		t.Fatal("bootstrap: serving certificate not signed by the CA")
	}
	if got, want := b.Cert.NotAfter, t0.Add(p.ServingLifetime); !got.Equal(want) {
		t.Errorf("serving NotAfter = %s, want %s", got, want)
	}
	if !b.Cert.NotBefore.Before(t0) || !b.CAs[0].NotBefore.Before(t0) {
		t.Error("certificates are not backdated")
	}
	if !sameNames(b.Cert, p.DNSNames, p.IPs) {
		t.Errorf("names = %v %v", b.Cert.DNSNames, b.Cert.IPAddresses)
	}

	r := mustApply(t, t0.Add(31*time.Second), p, b, RotateCA)
	if len(r.CAs) != 2 || r.CAs[1] != b.CAs[0] || r.Cert != b.Cert {
		t.Fatal("RotateCA must put a new CA first, keep the old one and the serving certificate")
	}
	if samePublicKey(r.CAKey.Public(), b.CAKey.Public()) || r.CAs[0].Subject.CommonName == b.CAs[0].Subject.CommonName {
		t.Error("the new CA must have a new key and name")
	}

	// A serving certificate is never valid beyond its CA.
	late := mustApply(t, t0.Add(45*time.Second), p, b, IssueServing)
	if !late.Cert.NotAfter.Equal(b.CAs[0].NotAfter) {
		t.Errorf("serving NotAfter = %s, want the CA's %s", late.Cert.NotAfter, b.CAs[0].NotAfter)
	}

	i := mustApply(t, t0.Add(34*time.Second), p, r, IssueServing)
	if i.Cert.CheckSignatureFrom(r.CAs[0]) != nil {
		t.Error("IssueServing must sign with the first CA")
	}
	ret := mustApply(t, t0.Add(40*time.Second), p, i, RetireCAs)
	if len(ret.CAs) != 1 || ret.CAs[0] != r.CAs[0] {
		t.Error("RetireCAs must keep the signing CA only")
	}
	if _, changed, err := Apply(t0, p, b, Wait); changed || err != nil {
		t.Errorf("Wait: changed %v, %v", changed, err)
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := testPolicy().Validate(); err != nil {
		t.Fatalf("test policy: %v", err)
	}
	bad := testPolicy()
	bad.CARenewBefore = 20 * time.Second // less than a serving lifetime
	if err := bad.Validate(); err == nil {
		t.Error("a CA renewed with less than a serving lifetime left was accepted")
	}
	bad = testPolicy()
	bad.ServingRenewBefore = bad.ServingLifetime
	if err := bad.Validate(); err == nil {
		t.Error("renew-before equal to the lifetime was accepted")
	}
	def := Policy{CALifetime: DefaultCALifetime, CARenewBefore: DefaultCARenewBefore,
		ServingLifetime: DefaultServingLifetime, ServingRenewBefore: DefaultServingRenewBefore,
		PropagationDelay: DefaultPropagationDelay, DNSNames: []string{"x"}}
	if err := def.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// history is a value over time, read back with a lag.
type history[T any] struct {
	at   []time.Time
	vals []T
}

func (h *history[T]) set(t time.Time, v T) { h.at, h.vals = append(h.at, t), append(h.vals, v) }

// get is the value as of t (the last set at or before t).
func (h *history[T]) get(t time.Time) (v T) {
	for i := range h.at {
		if h.at[i].After(t) {
			break
		}
		v = h.vals[i]
	}
	return v
}

// TestRotationNeverBreaksTrust simulates several CA lifetimes, a second at
// a time, with one replica deciding, the webhook configurations patched as
// soon as the Secret changes, an API server that sees them up to apiLag
// late and replicas that serve a new Secret up to serveLag late — both
// below the propagation delay. At every second the certificate some
// replica serves must verify against the bundle the API server uses.
func TestRotationNeverBreaksTrust(t *testing.T) {
	p := testPolicy()
	const apiLag, serveLag = 2 * time.Second, time.Second
	var (
		secret     Bundle
		configs    history[[]*x509.Certificate] // what the webhook configurations hold
		served     history[*x509.Certificate]   // what the Secret holds for replicas to serve
		obs        Observed
		trustedCA  *x509.Certificate
		servedCert *x509.Certificate
		counts     = map[Action]int{}
	)
	end := t0.Add(4 * p.CALifetime)
	for now := t0; now.Before(end); now = now.Add(time.Second) {
		// The replica: observe, decide, write; the configurations follow
		// the Secret at once (the same reconcile injects them).
		if secret.Cert != servedCert {
			servedCert, obs.ServedSince = secret.Cert, now
		}
		if len(secret.CAs) > 0 && trustedCA != secret.CAs[0] {
			// Patched in the pass that wrote the Secret; the replica sees
			// its watch event by this one. The API server may not yet.
			trustedCA, obs.TrustedSince = secret.CAs[0], now
		}
		obs.Bundle = secret
		d := Decide(now, p, obs)
		counts[d.Action]++
		if d.Action != Wait {
			var err error
			if secret, _, err = Apply(now, p, secret, d.Action); err != nil {
				t.Fatal(err)
			}
			served.set(now, secret.Cert)
			configs.set(now, secret.CAs)
		}

		// The API server dials a replica that may be late, trusting a
		// bundle that may be late too. Before the first certificate
		// exists there is nothing to check.
		bundle := configs.get(now.Add(-apiLag))
		for _, lag := range []time.Duration{0, serveLag} {
			cert := served.get(now.Add(-lag))
			if cert == nil || bundle == nil {
				continue
			}
			pool := x509.NewCertPool()
			for _, ca := range bundle {
				pool.AddCert(ca)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, DNSName: p.DNSNames[0]}); err != nil {
				t.Fatalf("at %s: served certificate %s does not verify against the API server's bundle: %v",
					now.Sub(t0), describe(cert), err)
			}
		}
	}
	// Four CA lifetimes with renewal at 2/3 rotate the CA at least three
	// times, and serving certificates more often still.
	if counts[Bootstrap] != 1 || counts[RotateCA] < 3 || counts[RetireCAs] != counts[RotateCA] || counts[IssueServing] < 2*counts[RotateCA] {
		t.Errorf("actions = %v", counts)
	}
}
