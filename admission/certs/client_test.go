package certs

import (
	"crypto/x509"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestIssueClient(t *testing.T) {
	now := time.Now()
	ca, caKey, err := newCA(now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := Bundle{CAs: []*x509.Certificate{ca}, CAKey: caKey}
	id := SPIFFEID("cluster.local", "shop", "web")
	if id.String() != "spiffe://cluster.local/ns/shop/sa/web" {
		t.Fatalf("SPIFFEID = %s", id)
	}
	cert, key, err := IssueClient(b, now, 24*time.Hour, id)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(ca.NotAfter) {
		t.Errorf("NotAfter %v beyond the CA's %v", cert.NotAfter, ca.NotAfter)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not verify for client auth: %v", err)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != id.String() {
		t.Errorf("URIs = %v", cert.URIs)
	}
	data, err := ClientSecretData(b, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	got := ParseSecretData(map[string][]byte{KeyCert: data[corev1.TLSCertKey], KeyKey: data[corev1.TLSPrivateKeyKey], KeyCABundle: data[KeyCABundle]})
	if got.Key == nil || len(got.CAs) != 1 {
		t.Errorf("Secret data does not read back: key %v, CAs %d", got.Key != nil, len(got.CAs))
	}
	if _, _, err := IssueClient(Bundle{}, now, time.Hour, id); err == nil {
		t.Error("issued without a CA")
	}
}

// TestRotatorForXDS: the serving certificate also covers the xDS Service,
// and the CAs of the Secret verify client certificates issued from it.
func TestRotatorForXDS(t *testing.T) {
	r, err := New(fake.NewClientset(), Options{Namespace: "serin-system", ExtraServices: []string{"serin-xds"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.Policy().DNSNames, "serin-xds.serin-system.svc") || !slices.Contains(r.Policy().DNSNames, "serin-webhook.serin-system.svc") {
		t.Errorf("DNS names %v", r.Policy().DNSNames)
	}
	if r.TrustedCAs() != nil {
		t.Error("trusted CAs before the Secret is loaded")
	}
	now := time.Now()
	ca, caKey, err := newCA(now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := newServing(now, time.Hour, ca, caKey, r.Policy().DNSNames, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := Bundle{CAs: []*x509.Certificate{ca}, CAKey: caKey, Cert: cert, Key: key}
	data, err := b.SecretData()
	if err != nil {
		t.Fatal(err)
	}
	r.load(&corev1.Secret{Data: data})
	client, _, err := IssueClient(b, now, time.Hour, SPIFFEID("cluster.local", "a", "default"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: r.TrustedCAs(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate not verified by the trusted CAs: %v", err)
	}
}
