// Package tester is serin's companion service for release hooks, wire
// compatible with Flagger's load tester so existing Canary webhooks work
// unchanged:
//
//   - gates: /gate/approve (always open), /gate/halt (always closed),
//     /gate/check, /gate/open, /gate/close, and /rollback/check,
//     /rollback/open, /rollback/close — per canary (name and namespace
//     from the payload), closed by default, in memory;
//   - a command runner on POST / with the command in metadata.cmd. Type
//     "cmd" (the default) splits the command into arguments and runs it
//     without a shell; only allow-listed programs run (hey, curl,
//     grpcurl, ghz by default). It runs in the background (once per
//     canary and command) unless it is blocking: metadata.blocking "true",
//     or a pre-rollout or post-rollout hook (metadata.blocking "false"
//     keeps those in the background too). Type "bash" runs bash -c,
//     blocking, and only when the tester was started with bash enabled.
//     A blocking command answers 200 when it succeeds (with its output if
//     metadata.returnCmdOutput is "true") and 500 with the error and the
//     start of its output when it fails. metadata.logCmdOutput "true" logs
//     the output of background commands.
package tester

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// Defaults.
const (
	DefaultTimeout   = time.Hour
	DefaultMaxOutput = 64 << 10
	maxPayload       = 1 << 20
)

// DefaultAllowedCommands are the programs type cmd may run by default.
var DefaultAllowedCommands = []string{"curl", "ghz", "grpcurl", "hey"}

// Options configure the tester.
type Options struct {
	// AllowedCommands are the programs (by name, found on PATH) type cmd
	// may run; nil means DefaultAllowedCommands.
	AllowedCommands []string
	// AllowBash enables type bash (bash -c with any script).
	AllowBash bool
	// Timeout bounds every command (default 1h).
	Timeout time.Duration
	// MaxOutput is how many bytes of a command's output are kept for the
	// answer and the log (default 64 KiB).
	MaxOutput int
	Log       logr.Logger
}

// Server is the tester's state and HTTP handler.
type Server struct {
	opts Options

	mu       sync.Mutex
	gates    map[string]bool
	rollback map[string]bool
	running  map[string]context.CancelFunc

	base    context.Context
	stop    context.CancelFunc
	tasks   sync.WaitGroup
	handler http.Handler
}

// New returns a tester. Close it to stop background commands.
func New(opts Options) *Server {
	if opts.AllowedCommands == nil {
		opts.AllowedCommands = DefaultAllowedCommands
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = DefaultMaxOutput
	}
	s := &Server{opts: opts, gates: map[string]bool{}, rollback: map[string]bool{}, running: map[string]context.CancelFunc{}}
	s.base, s.stop = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, "OK") }
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/readyz", ok)
	mux.HandleFunc("/gate/approve", ok)
	mux.HandleFunc("/gate/halt", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusForbidden, "Forbidden") })
	mux.HandleFunc("/gate/check", s.check(s.gates, "gate"))
	mux.HandleFunc("/gate/open", s.set(s.gates, true, "gate"))
	mux.HandleFunc("/gate/close", s.set(s.gates, false, "gate"))
	mux.HandleFunc("/rollback/check", s.check(s.rollback, "rollback"))
	mux.HandleFunc("/rollback/open", s.set(s.rollback, true, "rollback"))
	mux.HandleFunc("/rollback/close", s.set(s.rollback, false, "rollback"))
	mux.HandleFunc("/{$}", s.task)
	s.handler = mux
	return s
}

// Handler serves the tester's API.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops every background command and waits for them.
func (s *Server) Close() {
	s.stop()
	s.tasks.Wait()
}

// Running lists the background commands, as "name.namespace: cmd", sorted.
func (s *Server) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.running))
	for k := range s.running {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Run serves the tester on addr until ctx ends, then shuts down.
func Run(ctx context.Context, addr string, opts Options) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("tester listen on %s: %w", addr, err)
	}
	return Serve(ctx, ln, opts)
}

// Serve is Run on a listener.
func Serve(ctx context.Context, ln net.Listener, opts Options) error {
	s := New(opts)
	defer s.Close()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	opts.Log.Info("tester serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("tester: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("tester shutdown: %w", err)
	}
	return nil
}

// payload is the part of a hook payload the tester reads.
type payload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Type      string            `json:"type"`
	Metadata  map[string]string `json:"metadata"`
}

func (p payload) key() string { return p.Name + "." + p.Namespace }

func decode(w http.ResponseWriter, r *http.Request) (payload, bool) {
	var p payload
	if r.Method != http.MethodPost {
		reply(w, http.StatusMethodNotAllowed, "POST a JSON payload")
		return p, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayload))
	if err != nil {
		reply(w, http.StatusBadRequest, "reading the request body failed")
		return p, false
	}
	if err := json.Unmarshal(body, &p); err != nil {
		reply(w, http.StatusBadRequest, "decoding the request body failed: "+err.Error())
		return p, false
	}
	return p, true
}

func (s *Server) check(gates map[string]bool, kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := decode(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		open := gates[p.key()]
		s.mu.Unlock()
		s.opts.Log.Info("gate checked", "kind", kind, "canary", p.key(), "open", open)
		if open {
			reply(w, http.StatusOK, "Approved")
		} else {
			reply(w, http.StatusForbidden, "Forbidden")
		}
	}
}

func (s *Server) set(gates map[string]bool, open bool, kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := decode(w, r)
		if !ok {
			return
		}
		if p.Name == "" || p.Namespace == "" {
			reply(w, http.StatusBadRequest, "name and namespace are required")
			return
		}
		s.mu.Lock()
		if open {
			gates[p.key()] = true
		} else {
			delete(gates, p.key())
		}
		s.mu.Unlock()
		s.opts.Log.Info("gate set", "kind", kind, "canary", p.key(), "open", open)
		w.WriteHeader(http.StatusAccepted)
	}
}

func reply(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

func isTrue(s string) bool {
	b, _ := strconv.ParseBool(s)
	return b
}

// errorText is the answer body of a failed command.
func errorText(err error, out string) string {
	msg := err.Error()
	if out = strings.TrimSpace(out); out != "" {
		msg += ": " + out
	}
	return msg
}

var errStopped = errors.New("tester is stopping")
