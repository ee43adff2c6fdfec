package podsim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	corev1 "k8s.io/api/core/v1"
)

// PodAddr is one address a pod is being served on.
type PodAddr struct {
	Namespace string
	Name      string
	PortName  string
	Protocol  Protocol
	Version   string
	// Addr is the bound host:port (podIP:containerPort unless a custom Listen was used).
	Addr string
}

// ListenFunc opens a listener; it has the signature of (*net.ListenConfig).Listen.
type ListenFunc func(ctx context.Context, network, address string) (net.Listener, error)

// ServerOptions tune a PodServer. The zero value is ready to use.
type ServerOptions struct {
	Logger logr.Logger
	// Listen opens the listener for podIP:port; tests may bind elsewhere (for example
	// 127.0.0.1:0). Defaults to (*net.ListenConfig).Listen.
	Listen ListenFunc
	// Draw returns uniform draws in [0, 1) for the behaviour; it must be safe for
	// concurrent use. Defaults to math/rand/v2.Float64.
	Draw func() float64
}

// PodServer serves one pod: an HTTP server for its HTTP ports and a gRPC server for its
// gRPC ports, sharing one behaviour and one metrics registry.
type PodServer struct {
	plan Plan
	app  *app
	log  logr.Logger
	opts ServerOptions

	httpSrv *http.Server
	grpcSrv *grpc.Server
	health  *health.Server

	mu        sync.Mutex
	started   bool
	listeners []*onceCloseListener
	addrs     []PodAddr
	serving   sync.WaitGroup
	shutdown  sync.Once
}

// NewPodServer builds the server for a pod from its spec, reading literal env values
// only (the runner resolves ConfigMaps and Secrets). It does not check readiness and
// does not listen; see [PodServer.Start].
func NewPodServer(pod *corev1.Pod, opts ServerOptions) (*PodServer, error) {
	plan, err := PlanForPod(pod)
	if err != nil {
		return nil, err
	}
	return newPodServer(plan, opts), nil
}

func newPodServer(plan Plan, opts ServerOptions) *PodServer {
	if opts.Listen == nil {
		opts.Listen = (&net.ListenConfig{}).Listen
	}
	if opts.Draw == nil {
		opts.Draw = rand.Float64
	}
	a := newApp(plan, opts.Draw)
	s := &PodServer{plan: plan, app: a, opts: opts,
		log: opts.Logger.WithValues("pod", plan.Identity.Namespace+"/"+plan.Identity.Pod)}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s.httpSrv = &http.Server{
		Handler:           a.httpHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		Protocols:         protocols,
	}
	s.grpcSrv, s.health = a.newGRPCServer()
	return s
}

// SetConfigFiles replaces the volume files the server reports in
// [HeaderConfigFiles] (path to content); safe to call while serving.
func (s *PodServer) SetConfigFiles(files map[string]string) { s.app.setFiles(files) }

// Plan returns what the server serves.
func (s *PodServer) Plan() Plan { return s.plan }

// Gatherer exposes the pod's metrics registry (the one served on /metrics).
func (s *PodServer) Gatherer() prometheus.Gatherer { return s.app.metrics.registry }

// HTTPHandler is the pod's HTTP app, for use without listening (httptest).
func (s *PodServer) HTTPHandler() http.Handler { return s.httpSrv.Handler }

// Start listens on every planned port and serves them until [PodServer.Shutdown].
// If any port cannot be bound, the ones already bound are closed and the error is
// returned. Start may be called once.
func (s *PodServer) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("pod server already started")
	}
	s.started = true
	for _, p := range s.plan.Ports {
		addr := net.JoinHostPort(s.plan.PodIP, strconv.Itoa(int(p.Port)))
		ln, err := s.opts.Listen(ctx, "tcp", addr)
		if err != nil {
			s.closeListenersLocked()
			return fmt.Errorf("listen on %s (port %q): %w", addr, p.Name, err)
		}
		l := &onceCloseListener{Listener: ln}
		s.listeners = append(s.listeners, l)
		s.addrs = append(s.addrs, PodAddr{
			Namespace: s.plan.Identity.Namespace,
			Name:      s.plan.Identity.Pod,
			PortName:  p.Name,
			Protocol:  p.Protocol,
			Version:   s.plan.Behavior.Version,
			Addr:      ln.Addr().String(),
		})
	}
	for i, p := range s.plan.Ports {
		l := s.listeners[i]
		s.serving.Go(func() {
			var err error
			if p.Protocol == ProtocolGRPC {
				err = s.grpcSrv.Serve(l)
			} else {
				err = s.httpSrv.Serve(l)
			}
			if err != nil && !l.isClosed() && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				s.log.Error(err, "serving port stopped", "addr", l.Addr().String())
			}
		})
	}
	return nil
}

// Addrs returns the addresses being served, in port order; empty before Start.
func (s *PodServer) Addrs() []PodAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]PodAddr(nil), s.addrs...)
}

// CloseListeners stops accepting connections at once (so the addresses can be bound
// again) while requests in flight continue; Shutdown finishes them.
func (s *PodServer) CloseListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeListenersLocked()
}

func (s *PodServer) closeListenersLocked() {
	for _, l := range s.listeners {
		_ = l.Close()
	}
}

// Shutdown stops the server: gRPC health turns NOT_SERVING, listeners close, requests
// in flight may finish until ctx ends, then remaining connections are closed. It
// returns when every goroutine of the server has ended. Safe to call more than once.
func (s *PodServer) Shutdown(ctx context.Context) {
	s.shutdown.Do(func() {
		s.health.Shutdown()
		s.CloseListeners()
		var drained sync.WaitGroup
		drained.Go(func() {
			if err := s.httpSrv.Shutdown(ctx); err != nil {
				_ = s.httpSrv.Close()
			}
		})
		drained.Go(func() {
			done := make(chan struct{})
			go func() {
				s.grpcSrv.GracefulStop()
				close(done)
			}()
			select {
			case <-done:
			case <-ctx.Done():
				s.grpcSrv.Stop()
				<-done
			}
		})
		drained.Wait()
	})
	s.serving.Wait()
}

// onceCloseListener makes Close idempotent, so both podsim and the servers may close it.
type onceCloseListener struct {
	net.Listener
	closed atomic.Bool
}

func (l *onceCloseListener) Close() error {
	if l.closed.CompareAndSwap(false, true) {
		return l.Listener.Close()
	}
	return nil
}

func (l *onceCloseListener) isClosed() bool { return l.closed.Load() }
