package harness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// tlsRelay carries the plaintext connections of a client on loopback to an
// upstream server over TLS: each accepted connection becomes one TLS
// connection upstream (ALPN h2) and the bytes flow unchanged both ways.
// gRPC C-core 1.51 knows no TLS channel credentials for its xDS server
// (only insecure, google_default and fake), so its xDS stream reaches
// serin through a relay holding the same client certificate the grpc-go
// clients present, as a proxyless workload's node agent does.
type tlsRelay struct {
	ln       net.Listener
	upstream string
	cfg      *tls.Config

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// startTLSRelay listens on a free loopback port for connections to carry
// to upstream (host:port) with cfg; the server name is upstream's host.
func startTLSRelay(upstream string, cfg *tls.Config) (*tlsRelay, error) {
	host, _, err := net.SplitHostPort(upstream)
	if err != nil {
		return nil, fmt.Errorf("relay upstream %q: %w", upstream, err)
	}
	cfg = cfg.Clone()
	cfg.ServerName = host
	cfg.NextProtos = []string{"h2"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("relay listener: %w", err)
	}
	r := &tlsRelay{ln: ln, upstream: upstream, cfg: cfg, conns: map[net.Conn]struct{}{}}
	r.wg.Go(r.accept)
	return r, nil
}

// Addr is the relay's loopback address (host:port).
func (r *tlsRelay) Addr() string { return r.ln.Addr().String() }

func (r *tlsRelay) accept() {
	for {
		down, err := r.ln.Accept()
		if err != nil {
			return
		}
		if !r.track(down) {
			down.Close()
			return
		}
		r.wg.Go(func() { r.carry(down) })
	}
}

// carry dials upstream for one accepted connection and copies both ways
// until either side ends, then closes both.
func (r *tlsRelay) carry(down net.Conn) {
	defer r.untrack(down)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	d := tls.Dialer{Config: r.cfg}
	up, err := d.DialContext(ctx, "tcp", r.upstream)
	cancel()
	if err != nil {
		return
	}
	if !r.track(up) {
		up.Close()
		return
	}
	defer r.untrack(up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, down)
	go pipe(down, up)
	<-done
	up.Close()
	down.Close()
	<-done
}

// track records an open connection; false once the relay is closed.
func (r *tlsRelay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *tlsRelay) untrack(c net.Conn) {
	c.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
}

// Close stops accepting, ends every carried connection and waits.
func (r *tlsRelay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
