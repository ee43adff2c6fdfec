package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// TestStreamsWaitForReady: a proxy that connects before SetReady is told
// nothing, then exactly the state published by the time the server opens.
func TestStreamsWaitForReady(t *testing.T) {
	h := startServer(t, Options{}, false)
	r := newRelease("ns", "svc", 8080)
	names := []string{r.name}
	mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 10))

	c := newSotwClient(t, dial(t, h.addr), "early")
	c.request(cdsURL, nil, "", "", "")
	c.request(edsURL, names, "", "", "")
	c.none(300 * time.Millisecond)
	if st := h.s.Applied(names, 1); st.Subscribed != 0 {
		t.Fatalf("a held stream is already tracked: %+v", st)
	}
	if got := h.metric(t, "serin_xds_connected_proxies", map[string]string{"service": "ads"}); got != 0 {
		t.Fatalf("held stream counted as connected: %v", got)
	}

	// The engine restores state and publishes before opening the server.
	gen := mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 30))
	h.s.SetReady()

	got := map[string]*discoveryv3.DiscoveryResponse{}
	for range 2 {
		resp := c.next()
		got[resp.GetTypeUrl()] = resp
	}
	if cds := got[cdsURL]; cds == nil || !slices.Equal(sotwNames(t, cds), names) {
		t.Fatalf("CDS after ready: %v", cds)
	}
	eds := got[edsURL]
	if eds == nil || len(eds.GetResources()) != 1 || canaryWeightOf(decodeCLA(t, eds.GetResources()[0])) != 30 {
		t.Fatalf("EDS after ready: %v", eds)
	}
	c.ack(got[cdsURL], nil)
	c.ack(eds, names)
	c.none(100 * time.Millisecond)
	eventually(t, "applied after ready", func() bool { return h.s.Applied(names, gen).Done() })
}

// TestHeldStreamsDoNotBlockShutdown: streams held before SetReady end when the
// server stops.
func TestHeldStreamsDoNotBlockShutdown(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Listener: lis, Logger: testLogger(t), ShutdownTimeout: time.Minute, Open: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	c := newSotwClient(t, dial(t, lis.Addr().String()), "held")
	c.request(cdsURL, nil, "", "", "")
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return with a held stream")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stop took %v", d)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Fatal("second Start accepted")
	}
}

// TestRestartServesSameContentUnderNewVersions: a new process (new version
// prefix) that republishes the same releases brings reconnecting proxies
// back to "applied", over both protocols.
func TestRestartServesSameContentUnderNewVersions(t *testing.T) {
	r := newRelease("ns", "svc", 8080)
	names := []string{r.name}

	h1 := startServer(t, Options{}, true)
	mustPublish(t, h1.s, "ns/svc/8080", r.resources(t, 20))
	conn1 := dial(t, h1.addr)
	c1 := newSotwClient(t, conn1, "sotw-proxy")
	c1.request(edsURL, names, "", "", "")
	old := c1.next()
	c1.ack(old, names)
	d1 := newDeltaClient(t, conn1, "delta-proxy")
	d1.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: edsURL, ResourceNamesSubscribe: names})
	oldDelta := d1.next()
	d1.ack(oldDelta)
	eventually(t, "ACKs before the restart", func() bool { return h1.s.Applied(names, 1).Acked == 2 })
	h1.stop()

	h2 := startServer(t, Options{}, false)
	if h1.s.prefix == h2.s.prefix {
		t.Fatal("two servers share a version prefix")
	}
	gen := mustPublish(t, h2.s, "ns/svc/8080", r.resources(t, 20))
	h2.s.SetReady()

	conn2 := dial(t, h2.addr)
	c2 := newSotwClient(t, conn2, "sotw-proxy")
	c2.request(edsURL, names, old.GetVersionInfo(), "", "")
	resent := c2.next()
	if versionCounter(t, h2.s.prefix, resent.GetVersionInfo()) < 1 {
		t.Fatalf("version %q", resent.GetVersionInfo())
	}
	if !bytes.Equal(resent.GetResources()[0].GetValue(), old.GetResources()[0].GetValue()) {
		t.Fatal("restarted server sent different content")
	}
	c2.ack(resent, names)

	// A delta proxy states what it holds; the same content is not resent,
	// and it counts as applied.
	d2 := newDeltaClient(t, conn2, "delta-proxy")
	d2.send(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl:                 edsURL,
		ResourceNamesSubscribe:  names,
		InitialResourceVersions: map[string]string{r.name: oldDelta.GetResources()[0].GetVersion()},
	})
	d2.none(200 * time.Millisecond)
	eventually(t, "both proxies applied after restart", func() bool {
		st := h2.s.Applied(names, gen)
		return st.Subscribed == 2 && st.Done()
	})
}

// TestClientCertificateIdentity: with mTLS, a stream is known by its client
// certificate, and a node that sends no ID is reported by it.
func TestClientCertificateIdentity(t *testing.T) {
	ca, caKey := newCA(t)
	serverCert := issue(t, ca, caKey, func(c *x509.Certificate) {
		c.DNSNames = []string{"localhost"}
		c.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	const spiffe = "spiffe://cluster.local/ns/shop/sa/frontend"
	clientCert := issue(t, ca, caKey, func(c *x509.Certificate) {
		u, _ := url.Parse(spiffe)
		c.URIs = []*url.URL{u}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	h := startServer(t, Options{TLS: &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}}, true)
	r := newRelease("ns", "svc", 8080)
	names := []string{r.name}
	gen := mustPublish(t, h.s, "ns/svc/8080", r.resources(t, 0))

	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{clientCert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS13,
	})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := newSotwClient(t, conn, "")
	c.request(edsURL, names, "", "", "")
	c.next()
	if st := h.s.Applied(names, gen); !slices.Equal(st.Pending, []string{spiffe}) {
		t.Fatalf("Pending = %v, want the certificate identity", st.Pending)
	}
	ps := h.s.Proxies()
	if len(ps) != 1 || ps[0].Identity != spiffe {
		t.Fatalf("Proxies() = %+v", ps)
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, edit func(*x509.Certificate)) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
