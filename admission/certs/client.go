package certs

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultClientLifetime is how long a client certificate for a proxyless
// xDS client is valid unless asked otherwise (never beyond the CA).
const DefaultClientLifetime = 30 * 24 * time.Hour

// SPIFFEID is the identity serin's xDS server reads from a client
// certificate: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>,
// the form of Istio's workload certificates.
func SPIFFEID(trustDomain, namespace, serviceAccount string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: "/ns/" + namespace + "/sa/" + serviceAccount}
}

// IssueClient signs a client certificate for the SPIFFE identity id with
// the bundle's signing CA, valid from now (backdated) for lifetime but
// never beyond the CA.
func IssueClient(b Bundle, now time.Time, lifetime time.Duration, id *url.URL) (*x509.Certificate, crypto.Signer, error) {
	if len(b.CAs) == 0 || b.CAKey == nil {
		return nil, nil, errors.New("no usable CA in the certificate bundle")
	}
	ca := b.CAs[0]
	key, serial, notAfter, err := newLeaf(now, lifetime, ca)
	if err != nil {
		return nil, nil, fmt.Errorf("client certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.String(), Organization: []string{"serin"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id},
	}
	return sign(tmpl, ca, key.Public(), b.CAKey, key)
}

// ClientSecretData is the data of a kubernetes.io/tls Secret holding a
// client certificate: tls.crt, tls.key and ca.crt, the CAs that sign
// serin's serving certificate.
func ClientSecretData(b Bundle, cert *x509.Certificate, key crypto.Signer) (map[string][]byte, error) {
	k, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		corev1.TLSCertKey:       EncodeCerts(cert),
		corev1.TLSPrivateKeyKey: k,
		KeyCABundle:             EncodeCerts(b.CAs...),
	}, nil
}

// ClientRequest asks for a client certificate Secret.
type ClientRequest struct {
	// SerinNamespace and SerinSecret locate the Secret with serin's CA.
	SerinNamespace, SerinSecret string
	// Namespace and ServiceAccount make the identity; the Secret is
	// written to Namespace under SecretName.
	Namespace, ServiceAccount, SecretName string
	TrustDomain                           string
	Lifetime                              time.Duration
	Now                                   time.Time
}

// WriteClientSecret issues a client certificate from serin's CA and
// creates or replaces the Secret that holds it.
func WriteClientSecret(ctx context.Context, client kubernetes.Interface, req ClientRequest) (*corev1.Secret, error) {
	src, err := client.CoreV1().Secrets(req.SerinNamespace).Get(ctx, req.SerinSecret, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading serin's CA from Secret %s/%s: %w", req.SerinNamespace, req.SerinSecret, err)
	}
	b := ParseSecretData(src.Data)
	id := SPIFFEID(req.TrustDomain, req.Namespace, req.ServiceAccount)
	cert, key, err := IssueClient(b, req.Now, req.Lifetime, id)
	if err != nil {
		return nil, fmt.Errorf("issuing a certificate for %s: %w", id, err)
	}
	data, err := ClientSecretData(b, cert, key)
	if err != nil {
		return nil, err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: req.SecretName, Namespace: req.Namespace,
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "serin"},
			Annotations: map[string]string{"serin.dev/xds-identity": id.String()}},
		Type: corev1.SecretTypeTLS,
		Data: data,
	}
	secrets := client.CoreV1().Secrets(req.Namespace)
	out, err := secrets.Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		out, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("writing Secret %s/%s: %w", req.Namespace, req.SecretName, err)
	}
	return out, nil
}
