package tester

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/serin-dev/serin/internal/egress"
)

// Task types.
const (
	TypeCmd  = "cmd"
	TypeBash = "bash"
)

// task handles POST /: run metadata.cmd.
func (s *Server) task(w http.ResponseWriter, r *http.Request) {
	p, ok := decode(w, r)
	if !ok {
		return
	}
	if len(p.Metadata) == 0 {
		reply(w, http.StatusBadRequest, "metadata not found in payload")
		return
	}
	typ := p.Metadata["type"]
	if typ == "" {
		typ = TypeCmd
	}
	line := p.Metadata["cmd"]
	if strings.TrimSpace(line) == "" {
		reply(w, http.StatusBadRequest, "cmd not found in metadata")
		return
	}
	var argv []string
	switch typ {
	case TypeCmd:
		args, err := SplitArgs(line)
		if err != nil {
			reply(w, http.StatusBadRequest, "cmd: "+err.Error())
			return
		}
		if len(args) == 0 {
			reply(w, http.StatusBadRequest, "cmd not found in metadata")
			return
		}
		if strings.ContainsRune(args[0], '/') || !slices.Contains(s.opts.AllowedCommands, args[0]) {
			reply(w, http.StatusForbidden, fmt.Sprintf("command %q is not allowed; allowed: %s", args[0], strings.Join(s.opts.AllowedCommands, ", ")))
			return
		}
		path, err := exec.LookPath(args[0])
		if err != nil {
			reply(w, http.StatusBadRequest, fmt.Sprintf("command %q not found", args[0]))
			return
		}
		argv = append([]string{path}, args[1:]...)
	case TypeBash:
		if !s.opts.AllowBash {
			reply(w, http.StatusForbidden, "type bash is disabled on this tester")
			return
		}
		path, err := exec.LookPath("bash")
		if err != nil {
			reply(w, http.StatusBadRequest, "bash not found")
			return
		}
		argv = []string{path, "-c", line}
	default:
		reply(w, http.StatusBadRequest, fmt.Sprintf("unknown task type %s", typ))
		return
	}

	blocking := typ == TypeBash || isTrue(p.Metadata["blocking"]) ||
		((p.Type == "pre-rollout" || p.Type == "post-rollout") && p.Metadata["blocking"] != "false")
	if blocking {
		s.runBlocking(w, r, p, argv)
		return
	}
	s.startBackground(p, argv, line)
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) runBlocking(w http.ResponseWriter, r *http.Request, p payload, argv []string) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel()
	stop := context.AfterFunc(s.base, cancel)
	defer stop()
	log := s.opts.Log.WithValues("canary", p.key(), "cmd", egress.RedactCommand(p.Metadata["cmd"]))
	log.Info("command started", "blocking", true)
	out, err := s.exec(ctx, argv)
	if err != nil {
		log.Info("command failed", "error", err.Error(), "output", out)
		reply(w, http.StatusInternalServerError, errorText(err, out))
		return
	}
	log.Info("command finished", "output", out)
	if isTrue(p.Metadata["returnCmdOutput"]) {
		reply(w, http.StatusOK, out)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// startBackground runs a command unless the same command already runs for
// the same canary.
func (s *Server) startBackground(p payload, argv []string, line string) {
	key := p.key() + ": " + line
	s.mu.Lock()
	if _, dup := s.running[key]; dup || s.base.Err() != nil {
		s.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(s.base, s.opts.Timeout)
	s.running[key] = cancel
	s.tasks.Add(1)
	s.mu.Unlock()

	logOutput := isTrue(p.Metadata["logCmdOutput"])
	log := s.opts.Log.WithValues("canary", p.key(), "cmd", egress.RedactCommand(line))
	log.Info("command started", "blocking", false)
	go func() {
		defer s.tasks.Done()
		defer func() {
			s.mu.Lock()
			delete(s.running, key)
			s.mu.Unlock()
			cancel()
		}()
		start := time.Now()
		out, err := s.exec(ctx, argv)
		kv := []any{"duration", time.Since(start).Round(time.Millisecond)}
		if logOutput {
			kv = append(kv, "output", out)
		}
		if err != nil {
			log.Info("command failed", append(kv, "error", err.Error())...)
			return
		}
		log.Info("command finished", kv...)
	}()
}

// exec runs argv and returns the start of its combined output.
func (s *Server) exec(ctx context.Context, argv []string) (string, error) {
	if s.base.Err() != nil {
		return "", errStopped
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	out := &capped{max: s.opts.MaxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("command timed out after %v", s.opts.Timeout)
	}
	return out.String(), err
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf       []byte
	max       int
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - len(c.buf)
	if room < len(p) {
		c.truncated = true
		if room > 0 {
			c.buf = append(c.buf, p[:room]...)
		}
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *capped) String() string {
	s := strings.ToValidUTF8(string(c.buf), "")
	if c.truncated {
		s += "…"
	}
	return s
}
