package harness

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// selfSigned is a certificate for cn (and the IPs) that signs itself.
func selfSigned(t *testing.T, cn string, ips ...net.IP) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IPAddresses: ips,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert
}

// TestTLSRelay: a plaintext client of the relay reaches a server that
// demands a client certificate, over TLS with ALPN h2, and the relay's
// Close ends the carried connection.
func TestTLSRelay(t *testing.T) {
	serverCert, serverX509 := selfSigned(t, "server", net.IPv4(127, 0, 0, 1))
	clientCert, clientX509 := selfSigned(t, "client-of-ns")
	clientCAs, roots := x509.NewCertPool(), x509.NewCertPool()
	clientCAs.AddCert(clientX509)
	roots.AddCert(serverX509)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert}, ClientCAs: clientCAs,
		ClientAuth: tls.RequireAndVerifyClientCert, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				st := tc.ConnectionState()
				fmt.Fprintf(c, "peer=%s alpn=%s\n", st.PeerCertificates[0].Subject.CommonName, st.NegotiatedProtocol)
				_, _ = io.Copy(c, c)
			}()
		}
	}()

	r, err := startTLSRelay(ln.Addr().String(), &tls.Config{Certificates: []tls.Certificate{clientCert}, RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	if hello, err := rd.ReadString('\n'); err != nil || hello != "peer=client-of-ns alpn=h2\n" {
		t.Fatalf("server saw %q (%v), want the client certificate and h2", hello, err)
	}
	fmt.Fprint(c, "ping\n")
	if echo, err := rd.ReadString('\n'); err != nil || echo != "ping\n" {
		t.Fatalf("echo %q (%v)", echo, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// A deadline only turns a hang into a failure.
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := rd.ReadString('\n'); err == nil || isTimeout(err) {
		t.Fatal("the carried connection outlived the relay")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
