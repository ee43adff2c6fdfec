package certs

import (
	"crypto/tls"
	"testing"
)

func TestSecretDataRoundTrip(t *testing.T) {
	p := testPolicy()
	b := mustApply(t, t0, p, Bundle{}, Bootstrap)
	b = mustApply(t, t0.Add(31e9), p, b, RotateCA)
	data, err := b.SecretData()
	if err != nil {
		t.Fatal(err)
	}
	got := ParseSecretData(data)
	if len(got.CAs) != 2 || got.CAKey == nil || got.Cert == nil || got.Key == nil {
		t.Fatalf("parsed %+v", got)
	}
	for i := range b.CAs {
		if !got.CAs[i].Equal(b.CAs[i]) {
			t.Errorf("CA %d differs", i)
		}
	}
	if !got.Cert.Equal(b.Cert) {
		t.Error("serving certificate differs")
	}
	// The files are what a TLS stack loads.
	if _, err := tls.X509KeyPair(data[KeyCert], data[KeyKey]); err != nil {
		t.Errorf("tls.crt/tls.key: %v", err)
	}
	if !Trusts(data[KeyCABundle], b.CAs[1]) || Trusts(EncodeCerts(b.CAs[0]), b.CAs[1]) {
		t.Error("Trusts")
	}
}

func TestParseSecretDataDropsWhatDoesNotFit(t *testing.T) {
	p := testPolicy()
	a := mustApply(t, t0, p, Bundle{}, Bootstrap)
	b := mustApply(t, t0, p, Bundle{}, Bootstrap)
	da, _ := a.SecretData()
	db, _ := b.SecretData()

	mixed := map[string][]byte{KeyCABundle: da[KeyCABundle], KeyCAKey: db[KeyCAKey], KeyCert: da[KeyCert], KeyKey: db[KeyKey]}
	got := ParseSecretData(mixed)
	if len(got.CAs) != 1 || got.CAKey != nil || got.Cert == nil || got.Key != nil {
		t.Errorf("keys of another pair must be dropped: %+v", got)
	}
	if got.TLSCertificate() != nil {
		t.Error("a certificate without its key must not be served")
	}
	if d := Decide(t0, p, Observed{Bundle: got}); d.Action != Bootstrap {
		t.Errorf("decision = %s, want Bootstrap", d.Action)
	}

	garbage := ParseSecretData(map[string][]byte{KeyCABundle: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), KeyCert: []byte("x")})
	if garbage.CAs != nil || garbage.Cert != nil {
		t.Errorf("garbage parsed: %+v", garbage)
	}
	if _, err := (Bundle{}).SecretData(); err == nil {
		t.Error("an empty bundle encoded")
	}
}
