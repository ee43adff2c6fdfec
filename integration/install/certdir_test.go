package install

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/serin-dev/serin/admission"
	"github.com/serin-dev/serin/admission/certs"
	"github.com/serin-dev/serin/integration/cluster"
)

// secretVolume writes files the way the kubelet updates a mounted Secret:
// a new timestamped directory, the ..data symlink swapped to it by rename,
// the old directory removed; the visible names are symlinks through ..data.
type secretVolume struct {
	dir string
	n   int
	cur string
}

func (v *secretVolume) write(t *testing.T, files map[string][]byte) {
	t.Helper()
	v.n++
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%09d", v.n, v.n)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(v.dir, ts), 0o755))
	for name, data := range files {
		must(os.WriteFile(filepath.Join(v.dir, ts, name), data, 0o644))
	}
	must(os.Symlink(ts, filepath.Join(v.dir, "..data_tmp")))
	must(os.Rename(filepath.Join(v.dir, "..data_tmp"), filepath.Join(v.dir, "..data")))
	for name := range files {
		link := filepath.Join(v.dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			must(os.Symlink(filepath.Join("..data", name), link))
		}
	}
	if v.cur != "" {
		must(os.RemoveAll(filepath.Join(v.dir, v.cur)))
	}
	v.cur = ts
}

// servedLeaf dials the server and returns the certificate it presents,
// verified against roots for 127.0.0.1.
func servedLeaf(addr string, roots *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func pool(cas ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cas {
		p.AddCert(c)
	}
	return p
}

// TestCertDirHotReload: in dir mode (a mounted cert-manager Secret) the
// webhook server serves a renewed certificate, and one from a new CA,
// without a restart, using controller-runtime's certificate watcher as
// serin does (webhook.Options.CertDir).
func TestCertDirHotReload(t *testing.T) {
	p := certs.Policy{
		CALifetime: time.Hour, CARenewBefore: 30 * time.Minute, ServingLifetime: 10 * time.Minute, ServingRenewBefore: 5 * time.Minute,
		DNSNames: certs.ServiceNames("serin-webhook", "serin-system"), IPs: []net.IP{net.ParseIP("127.0.0.1")},
	}
	issue := func(b certs.Bundle, a certs.Action) certs.Bundle {
		out, _, err := certs.Apply(time.Now(), p, b, a)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// What cert-manager writes: tls.crt, tls.key and the issuing CA as ca.crt.
	files := func(b certs.Bundle) map[string][]byte {
		d, err := b.SecretData()
		if err != nil {
			t.Fatal(err)
		}
		return map[string][]byte{"tls.crt": d[certs.KeyCert], "tls.key": d[certs.KeyKey], "ca.crt": certs.EncodeCerts(b.CAs[0])}
	}

	vol := &secretVolume{dir: t.TempDir()}
	first := issue(certs.Bundle{}, certs.Bootstrap)
	vol.write(t, files(first))

	ports, err := cluster.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	port := ports[0]
	srv := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: port, CertDir: vol.dir})
	admission.Register(srv, nil, logr.Discard())
	ctx := t.Context()
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		// The server is stopped by the test's context; wait for it.
		if err := <-done; err != nil {
			t.Errorf("webhook server: %v", err)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	waitServed := func(want *x509.Certificate, roots *x509.CertPool) time.Duration {
		t.Helper()
		start := time.Now()
		var last error
		for time.Since(start) < 15*time.Second {
			got, err := servedLeaf(addr, roots)
			if err == nil && got.Equal(want) {
				return time.Since(start)
			}
			if err == nil {
				err = fmt.Errorf("served %s", certs.Fingerprint(got))
			}
			last = err
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("certificate %s not served after 15s: %v", certs.Fingerprint(want), last)
		return 0
	}
	waitServed(first.Cert, pool(first.CAs[0]))

	renewed := issue(first, certs.IssueServing)
	vol.write(t, files(renewed))
	d1 := waitServed(renewed.Cert, pool(first.CAs[0]))

	newCA := issue(issue(renewed, certs.RotateCA), certs.IssueServing)
	vol.write(t, files(newCA))
	d2 := waitServed(newCA.Cert, pool(newCA.CAs[0]))
	t.Logf("renewed certificate served after %s, one from a new CA after %s", d1.Round(time.Millisecond), d2.Round(time.Millisecond))
	if limit := 3 * time.Second; d1 > limit || d2 > limit {
		t.Errorf("reload took %s and %s, want under %s", d1, d2, limit)
	}
}
