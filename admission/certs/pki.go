package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Keys of the webhook Secret.
const (
	KeyCABundle = "ca.crt"
	KeyCAKey    = "ca.key"
	KeyCert     = "tls.crt"
	KeyKey      = "tls.key"
)

// backdate is how far before its issue time a certificate becomes valid, so
// that a client whose clock is a little behind accepts it. Renewal is
// decided from NotAfter only, so it does not shorten anything.
const backdate = 5 * time.Minute

// Bundle is the content of the webhook Secret, parsed. A field is nil when
// its key is missing or does not parse, and a key is nil when it does not
// belong to its certificate, so Decide sees exactly what is usable.
type Bundle struct {
	// CAs is ca.crt: CAs[0] signs (its key is CAKey); the others are
	// retired CAs, trusted until no served certificate needs them.
	CAs   []*x509.Certificate
	CAKey crypto.Signer
	// Cert and Key are the serving certificate and its key.
	Cert *x509.Certificate
	Key  crypto.Signer
}

// ParseSecretData reads a Bundle from a Secret's data. It never fails:
// whatever is missing or broken is left nil for Decide to replace.
func ParseSecretData(data map[string][]byte) Bundle {
	var b Bundle
	b.CAs = parseCerts(data[KeyCABundle])
	if len(b.CAs) > 0 {
		if k := parseKey(data[KeyCAKey]); k != nil && samePublicKey(k.Public(), b.CAs[0].PublicKey) {
			b.CAKey = k
		}
	}
	if certs := parseCerts(data[KeyCert]); len(certs) > 0 {
		b.Cert = certs[0]
		if k := parseKey(data[KeyKey]); k != nil && samePublicKey(k.Public(), b.Cert.PublicKey) {
			b.Key = k
		}
	}
	return b
}

// SecretData encodes a complete Bundle for the Secret.
func (b Bundle) SecretData() (map[string][]byte, error) {
	if len(b.CAs) == 0 || b.CAKey == nil || b.Cert == nil || b.Key == nil {
		return nil, errors.New("incomplete certificate bundle")
	}
	caKey, err := encodeKey(b.CAKey)
	if err != nil {
		return nil, err
	}
	key, err := encodeKey(b.Key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		KeyCABundle: EncodeCerts(b.CAs...),
		KeyCAKey:    caKey,
		KeyCert:     EncodeCerts(b.Cert),
		KeyKey:      key,
	}, nil
}

// TLSCertificate is the serving certificate for a tls.Config, or nil when
// the bundle has no usable one.
func (b Bundle) TLSCertificate() *tls.Certificate {
	if b.Cert == nil || b.Key == nil {
		return nil
	}
	return &tls.Certificate{Certificate: [][]byte{b.Cert.Raw}, PrivateKey: b.Key, Leaf: b.Cert}
}

// EncodeCerts PEM-encodes certificates, in order.
func EncodeCerts(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// Fingerprint is the SHA-256 of a certificate, in hex, for logs and tests.
func Fingerprint(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:8])
}

func parseCerts(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil
		}
		out = append(out, c)
	}
}

func parseKey(data []byte) crypto.Signer {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	s, _ := key.(crypto.Signer)
	return s
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// newCA makes a self-signed CA valid from now (backdated) for lifetime.
// Each CA gets a distinct common name, so that two CAs in one bundle are
// told apart by name as well as by key.
func newCA(now time.Time, lifetime time.Duration) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("serin-webhook-ca@%d", now.Unix()), Organization: []string{"serin"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return sign(tmpl, tmpl, key.Public(), key, key)
}

// newLeaf is what every certificate serin signs starts from: a fresh P-256
// key, a serial, and the end of its validity, never beyond the CA's.
func newLeaf(now time.Time, lifetime time.Duration, ca *x509.Certificate) (*ecdsa.PrivateKey, *big.Int, time.Time, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	return key, serial, notAfter, nil
}

// newServing makes a serving certificate for names and ips signed by ca,
// valid for lifetime but never beyond the CA.
func newServing(now time.Time, lifetime time.Duration, ca *x509.Certificate, caKey crypto.Signer, names []string, ips []net.IP) (*x509.Certificate, crypto.Signer, error) {
	key, serial, notAfter, err := newLeaf(now, lifetime, ca)
	if err != nil {
		return nil, nil, fmt.Errorf("serving certificate: %w", err)
	}
	cn := "serin-webhook"
	if len(names) > 0 {
		cn = names[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"serin"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	return sign(tmpl, ca, key.Public(), caKey, key)
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer, key crypto.Signer) (*x509.Certificate, crypto.Signer, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate: %w", err)
	}
	return c, key, nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
