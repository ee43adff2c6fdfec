package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
)

// Options configure a Server. The zero value of every field has a sane
// default.
type Options struct {
	// Address to listen on; default ":18000". Ignored if Listener is set.
	Address string
	// Listener, if set, is served instead of listening on Address. Start
	// closes it when it returns.
	Listener net.Listener
	// TLS, if set, serves TLS with this configuration. With ClientAuth set to
	// verify client certificates, each stream's identity is taken from the
	// client certificate (URI SAN, else DNS SAN, else CN).
	TLS *tls.Config
	// Open turns access control off: every client, with or without an
	// identity, is served every release, and its NACKs and load reports
	// count. Only for plaintext xDS that an admin asked for. Otherwise a
	// client needs a SPIFFE identity in a verified certificate and gets only
	// what its namespace may see (see authz.go).
	Open bool
	// MaxLoadClusters bounds the distinct clusters one load reporting
	// stream may report on; reports on more are dropped. Default 64.
	MaxLoadClusters int

	// MaxConcurrentStreams per HTTP/2 connection; default 1000.
	MaxConcurrentStreams uint32
	// Keepalive pings idle connections; default every 30s, 10s timeout.
	Keepalive keepalive.ServerParameters
	// KeepaliveEnforcement bounds client pings; default at most one per 5s,
	// allowed without active streams (Envoy and grpc-go ping idle
	// connections).
	KeepaliveEnforcement keepalive.EnforcementPolicy
	// ShutdownTimeout bounds the graceful stop when Start's context ends;
	// default 5s.
	ShutdownTimeout time.Duration

	// LoadReportInterval is the interval requested from load reporting
	// clients; default 1s.
	LoadReportInterval time.Duration
	// LoadRetention is how long load reports are kept; default 15m.
	LoadRetention time.Duration

	// OnNACK is called once per resource a proxy rejects, from a single
	// goroutine, after the last good content has been put back. It must not
	// block for long.
	OnNACK func(NACK)

	// Registerer receives the serin_xds_* metrics; default a private
	// registry (controller-runtime's metrics.Registry in production).
	Registerer prometheus.Registerer
	// Logger; default discards.
	Logger logr.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Address == "" {
		o.Address = ":18000"
	}
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 1000
	}
	if o.Keepalive == (keepalive.ServerParameters{}) {
		o.Keepalive = keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}
	}
	if o.KeepaliveEnforcement == (keepalive.EnforcementPolicy{}) {
		o.KeepaliveEnforcement = keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 5 * time.Second
	}
	if o.LoadReportInterval == 0 {
		o.LoadReportInterval = time.Second
	}
	if o.MaxLoadClusters == 0 {
		o.MaxLoadClusters = 64
	}
	if o.LoadRetention == 0 {
		o.LoadRetention = 15 * time.Minute
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Server is serin's xDS control plane. Create it with New, publish releases
// with Publish, run it with Start and open it with SetReady.
type Server struct {
	opts    Options
	log     logr.Logger
	now     func() time.Time
	prefix  string
	metrics *metrics

	caches  [numKinds]*cache.LinearCache
	guarded *guardedCache
	encoded encodedCache
	tracker *tracker
	loads   *loadStore

	publishMu sync.Mutex // serializes Publish, Remove and reverts
	idx       *index

	// changes counts what may change an answer of Applied: publications,
	// removals, and every request, response, open and close of a stream.
	changes atomic.Uint64

	nackCh   chan []rejection
	stopping <-chan struct{} // Start's context, once running

	ready     chan struct{}
	readyOnce sync.Once
	started   sync.Once
}

// New builds a Server and registers its metrics. Nothing is served until
// Start, and no stream is answered until SetReady.
func New(opts Options) (*Server, error) {
	opts.defaults()
	if opts.LoadReportInterval < 0 || opts.LoadRetention < 0 || opts.ShutdownTimeout < 0 {
		return nil, errors.New("xds server: negative durations in options")
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	prefix, err := versionPrefix(opts.Now())
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		now:     opts.Now,
		prefix:  prefix,
		metrics: m,
		idx:     newIndex(),
		loads:   newLoadStore(opts.LoadRetention),
		nackCh:  make(chan []rejection, 1024),
		ready:   make(chan struct{}),
	}
	gcp := gcpLogger{log: opts.Logger.WithName("go-control-plane")}
	for k := range numKinds {
		s.caches[k] = cache.NewLinearCache(k.typeURL(), cache.WithVersionPrefix(prefix), cache.WithLogger(gcp))
	}
	s.guarded = newGuardedCache(s.caches, prefix, opts.Logger)
	s.tracker = newTracker(s)
	return s, nil
}

// versionPrefix makes the versions of this process distinct from those of
// any earlier one, so a proxy reconnecting after a restart is never told that
// a version it saw before is current. It ends in a dash; the caches append
// their counter.
func versionPrefix(now time.Time) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("xds server: version prefix: %w", err)
	}
	return strconv.FormatInt(now.UnixNano(), 36) + hex.EncodeToString(b[:]) + "-", nil
}

// SetReady opens the server: streams held since they connected start being
// answered. The engine calls it once informers are synced and the release
// state has been restored and published. Calling it again does nothing.
func (s *Server) SetReady() {
	s.readyOnce.Do(func() {
		close(s.ready)
		s.log.Info("xDS server ready")
	})
}

// NeedLeaderElection is false: every replica serves xDS.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves xDS and LRS until ctx ends, then stops gracefully. It is a
// controller-runtime Runnable and may be called once.
func (s *Server) Start(ctx context.Context) error {
	err := errors.New("xds server: Start called twice")
	s.started.Do(func() { err = s.run(ctx) })
	return err
}

func (s *Server) run(ctx context.Context) error {
	lis := s.opts.Listener
	if lis == nil {
		var err error
		lis, err = net.Listen("tcp", s.opts.Address)
		if err != nil {
			return fmt.Errorf("xds server: listening on %s: %w", s.opts.Address, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.stopping = ctx.Done()

	gs := grpc.NewServer(s.grpcOptions(ctx)...)
	xds := serverv3.NewServer(ctx, s.guarded, s.tracker,
		sotw.WithLogger(gcpLogger{log: s.log.WithName("go-control-plane")}),
		sotw.DeactivateLegacyWildcardForTypes([]string{kindEndpoint.typeURL(), kindRoute.typeURL()}))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(gs, xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(gs, xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(gs, xds)
	routeservice.RegisterRouteDiscoveryServiceServer(gs, xds)
	lrsv3.RegisterLoadReportingServiceServer(gs, &lrsService{s: s})

	go s.runNACKs(ctx)

	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(lis) }()
	s.log.Info("xDS server listening", "address", lis.Addr().String(), "tls", s.opts.TLS != nil,
		"accessControl", !s.opts.Open, "versionPrefix", s.prefix)

	select {
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("xds server: serving: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(s.opts.ShutdownTimeout):
		s.log.Info("xDS graceful stop timed out; closing connections")
		gs.Stop()
		<-stopped
	}
	return nil
}

func (s *Server) grpcOptions(ctx context.Context) []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.MaxConcurrentStreams(s.opts.MaxConcurrentStreams),
		grpc.KeepaliveParams(s.opts.Keepalive),
		grpc.KeepaliveEnforcementPolicy(s.opts.KeepaliveEnforcement),
		grpc.ChainStreamInterceptor(s.gate(ctx)),
	}
	if s.opts.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.opts.TLS)))
	}
	return opts
}

// gate holds discovery streams until SetReady: the connection and the stream
// are accepted, but the handler (and so go-control-plane) does not read the
// first request before the server is ready. A stream that ends while held
// ends with its context's error. Load reporting is not gated. Streams of
// clients without an identity end at once (unless the server is Open).
func (s *Server) gate(ctx context.Context) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := s.admit(ss.Context()); err != nil {
			return err
		}
		if strings.HasPrefix(info.FullMethod, "/"+lrsv3.LoadReportingService_ServiceDesc.ServiceName+"/") {
			return handler(srv, ss)
		}
		select {
		case <-s.ready:
		case <-ss.Context().Done():
			return status.FromContextError(ss.Context().Err()).Err()
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
		return handler(srv, ss)
	}
}

// Changes is a counter that moves whenever an answer of Applied may have
// changed: a caller that asked for many releases can keep its answers
// while it has not moved.
func (s *Server) Changes() uint64 { return s.changes.Load() }
