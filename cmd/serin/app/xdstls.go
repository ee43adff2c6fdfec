package app

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"

	"github.com/serin-dev/serin/admission/certs"
)

// xdsServices are the Services the builtin serving certificate also covers.
func xdsServices(o controllerOptions) []string {
	if o.xdsPlaintext || o.xdsService == "" || o.xdsTLSCert != "" {
		return nil
	}
	return []string{o.xdsService}
}

// xdsTLSConfig is the xDS server's TLS: nil with --xds-plaintext, else
// mutual TLS. The serving certificate is --xds-tls-cert if given, else the
// webhook's (the Rotator's in builtin mode, the files of --webhook-cert-dir
// in dir mode), hot-reloaded. Client certificates must chain to serin's
// own CA (the Rotator's, or ca.crt in --webhook-cert-dir) or to a CA of
// --xds-client-ca.
func xdsTLSConfig(o controllerOptions, mgr ctrl.Manager, rotator *certs.Rotator) (*tls.Config, error) {
	if o.xdsPlaintext {
		return nil, nil
	}
	getCert, err := xdsServingCertificate(o, mgr, rotator)
	if err != nil {
		return nil, err
	}
	extra, err := readCAs(o.xdsClientCA)
	if err != nil {
		return nil, fmt.Errorf("--xds-client-ca: %w", err)
	}
	roots := func() *x509.CertPool {
		var own *x509.CertPool
		if rotator != nil {
			own = rotator.TrustedCAs()
		} else if cas, err := readCAs(filepath.Join(o.webhookCertDir, certs.KeyCABundle)); err == nil {
			own = pool(cas)
		}
		p := pool(extra)
		if own != nil {
			p = own.Clone()
			for _, c := range extra {
				p.AddCert(c)
			}
		}
		return p
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert, ClientAuth: tls.RequireAndVerifyClientCert}
	cfg := base.Clone()
	// The CAs are read per handshake: serin's own CA rotates.
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.ClientCAs = roots()
		return c, nil
	}
	return cfg, nil
}

// checkXDSFlags rejects contradictory xDS security flags before anything
// starts.
func checkXDSFlags(o controllerOptions) error {
	switch {
	case o.xdsPlaintext && (o.xdsTLSCert != "" || o.xdsTLSKey != "" || o.xdsClientCA != ""):
		return errors.New("--xds-plaintext excludes --xds-tls-cert, --xds-tls-key and --xds-client-ca")
	case (o.xdsTLSCert == "") != (o.xdsTLSKey == ""):
		return errors.New("--xds-tls-cert and --xds-tls-key go together")
	}
	if _, err := readCAs(o.xdsClientCA); err != nil {
		return fmt.Errorf("--xds-client-ca: %w", err)
	}
	return nil
}

// xdsServingCertificate is the source of the xDS serving certificate.
func xdsServingCertificate(o controllerOptions, mgr ctrl.Manager, rotator *certs.Rotator) (func(*tls.ClientHelloInfo) (*tls.Certificate, error), error) {
	certFile, keyFile := o.xdsTLSCert, o.xdsTLSKey
	switch {
	case certFile == "" && rotator != nil:
		return rotator.GetCertificate, nil
	case certFile == "":
		certFile, keyFile = filepath.Join(o.webhookCertDir, "tls.crt"), filepath.Join(o.webhookCertDir, "tls.key")
	}
	watcher, err := certwatcher.New(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("xds certificate: %w", err)
	}
	if err := mgr.Add(everyReplica(watcher.Start)); err != nil {
		return nil, err
	}
	return watcher.GetCertificate, nil
}

// readCAs reads PEM certificates from a file; no file, no certificates.
func readCAs(path string) ([]*x509.Certificate, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cas := certs.ParseSecretData(map[string][]byte{certs.KeyCABundle: data}).CAs
	if len(cas) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return cas, nil
}

func pool(cas []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cas {
		p.AddCert(c)
	}
	return p
}
