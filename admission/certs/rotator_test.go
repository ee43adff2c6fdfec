package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"
)

// TestRotator runs the Rotator against a fake API and a fake clock through
// a serving renewal and a CA rotation. At every step the certificate it
// serves must verify against the caBundle stored in the webhook
// configurations. (The real API server, with two replicas and concurrent
// writes, is exercised by integration/install.)
func TestRotator(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "serin"},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "hold.deployments.serin.dev"}},
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "serin"},
		Webhooks:   []admissionregistrationv1.ValidatingWebhook{{Name: "a.serin.dev"}, {Name: "b.serin.dev"}},
	}
	cs := fake.NewClientset(mwc, vwc)
	reg := prometheus.NewRegistry()
	r, err := New(cs, Options{
		Namespace: "serin-system", Clock: clk, IPs: []net.IP{net.ParseIP("127.0.0.1")}, Metrics: NewMetrics(reg),
		CALifetime: time.Minute, CARenewBefore: 30 * time.Second,
		ServingLifetime: 30 * time.Second, ServingRenewBefore: 10 * time.Second,
		PropagationDelay: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ready(nil) == nil {
		t.Fatal("ready before it has a certificate")
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := r.Start(ctx); err != nil {
			t.Error(err)
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	// bundles reads the caBundles of every webhook.
	bundles := func() [][]byte {
		m, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "serin", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "serin", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := [][]byte{m.Webhooks[0].ClientConfig.CABundle}
		for _, w := range v.Webhooks {
			out = append(out, w.ClientConfig.CABundle)
		}
		return out
	}
	served := func() *x509.Certificate {
		c, err := r.GetCertificate(nil)
		if err != nil {
			return nil
		}
		return c.Leaf
	}

	// Advance the fake clock a second at a time, letting the Rotator react
	// in real time in between; record what it serves.
	var (
		certsSeen = map[string]bool{}
		issuers   = map[string]bool{}
		bundleCAs = map[int]bool{}
	)
	for step := 0; step < 90; step++ {
		deadline := time.Now().Add(2 * time.Second)
		for served() == nil && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		cert := served()
		if cert == nil {
			t.Fatal("no certificate served")
		}
		certsSeen[Fingerprint(cert)] = true
		issuers[cert.Issuer.CommonName] = true
		for i, b := range bundles() {
			cas := parseCerts(b)
			bundleCAs[len(cas)] = true
			if len(cas) == 0 {
				continue // not yet injected (bootstrap)
			}
			pool := x509.NewCertPool()
			for _, ca := range cas {
				pool.AddCert(ca)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: clk.Now(), DNSName: "127.0.0.1"}); err != nil {
				t.Fatalf("at %s: webhook %d: served %s does not verify against its caBundle: %v", clk.Now().Sub(t0), i, describe(cert), err)
			}
		}
		clk.Step(time.Second)
	}
	if len(certsSeen) < 4 || len(issuers) < 2 || !bundleCAs[2] || !bundleCAs[1] {
		t.Errorf("over 90s: %d serving certificates from %d CAs, bundle sizes %v", len(certsSeen), len(issuers), bundleCAs)
	}
	if r.Ready(nil) != nil {
		t.Error("not ready")
	}
	checkMetrics(t, reg)
}

// checkMetrics checks the Rotator's series after TestRotator's 90s: one
// bootstrap, CA rotations and serving certificates counted by action, and
// the expiry of both certificates.
func checkMetrics(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				got[key] = g.GetValue()
			} else {
				got[key] = m.GetCounter().GetValue()
			}
		}
	}
	if v := got["serin_webhook_certificate_writes_total action=Bootstrap"]; v != 1 {
		t.Errorf("bootstrap writes = %v, want 1 (all: %v)", v, got)
	}
	for _, action := range []string{"RotateCA", "IssueServing"} {
		if v := got["serin_webhook_certificate_writes_total action="+action]; v < 1 {
			t.Errorf("%s writes = %v, want at least 1 (all: %v)", action, v, got)
		}
	}
	for _, which := range []string{"ca", "serving"} {
		if v := got["serin_webhook_certificate_expiry_timestamp_seconds certificate="+which]; v <= float64(t0.Unix()) {
			t.Errorf("%s expiry = %v, want after %v (all: %v)", which, v, t0.Unix(), got)
		}
	}
}

// TestRotatorCABundle: the PEM bundle follows the Secret's CAs, and a
// change (only a change) is signalled.
func TestRotatorCABundle(t *testing.T) {
	r, err := New(fake.NewClientset(), Options{Namespace: "serin-system"})
	if err != nil {
		t.Fatal(err)
	}
	if r.CABundle() != nil {
		t.Fatal("a bundle before the Secret is loaded")
	}
	ca1, _, err := newCA(t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca2, _, err := newCA(t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	changed := func() bool {
		select {
		case <-r.CAChanges():
			return true
		default:
			return false
		}
	}
	secret := func(cas ...*x509.Certificate) *corev1.Secret {
		return &corev1.Secret{Data: map[string][]byte{KeyCABundle: EncodeCerts(cas...)}}
	}
	r.load(secret(ca1))
	if !bytes.Equal(r.CABundle(), EncodeCerts(ca1)) || !changed() {
		t.Fatal("first CA not published")
	}
	r.load(secret(ca1))
	if changed() {
		t.Error("an unchanged bundle was signalled")
	}
	r.load(secret(ca2, ca1))
	if !bytes.Equal(r.CABundle(), EncodeCerts(ca2, ca1)) || !changed() {
		t.Error("a rotation (new CA with the old one still trusted) not published")
	}
}
