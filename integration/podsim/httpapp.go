package podsim

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxEchoBytes bounds request bodies echoed by /echo and gRPC payloads.
const maxEchoBytes = 1 << 20

// InfoResponse is the body of "/".
type InfoResponse struct {
	Hostname  string `json:"hostname"`
	Version   string `json:"version"`
	Message   string `json:"message"`
	Namespace string `json:"namespace"`
	Workload  string `json:"workload"`
	PodIP     string `json:"pod_ip"`
}

// httpHandler is the pod's HTTP app. Probe and metrics endpoints bypass the behaviour
// (no delay, no failure) and are not counted; everything else goes through instrument.
func (a *app) httpHandler() http.Handler {
	appMux := http.NewServeMux()
	appMux.HandleFunc("/{$}", a.serveInfo)
	appMux.HandleFunc("/version", a.serveVersion)
	appMux.HandleFunc("/status/{code}", a.serveStatus)
	appMux.HandleFunc("/delay/{seconds}", a.serveDelay)
	appMux.HandleFunc("/headers", a.serveHeaders)
	appMux.HandleFunc("POST /echo", a.serveEcho)
	appMux.HandleFunc("POST /token", a.serveToken)

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", serveOK)
	mux.HandleFunc("/readyz", serveOK)
	mux.Handle("/metrics", promhttp.HandlerFor(a.metrics.registry, promhttp.HandlerOpts{}))
	mux.Handle("/", a.instrument(appMux))

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, kv := range a.identity() {
			w.Header().Set(kv[0], kv[1])
		}
		mux.ServeHTTP(w, r)
	})
}

// instrument applies the pod's behaviour to a request and records it in the metrics.
func (a *app) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		out := a.outcome()
		if err := sleep(r.Context(), out.Delay); err == nil {
			if out.Fail {
				writeJSON(rec, a.plan.Behavior.ErrorHTTPCode, map[string]string{
					"error":    "injected failure",
					"hostname": a.plan.Identity.Pod,
				})
			} else {
				next.ServeHTTP(rec, r)
			}
		}
		code := rec.code
		if code == 0 && r.Context().Err() == nil {
			code = http.StatusOK // net/http sends 200 for a handler that wrote nothing
		}
		a.metrics.observe(request{protocol: ProtocolHTTP, code: code, authority: r.Host, duration: time.Since(start)})
	})
}

func (a *app) serveInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, InfoResponse{
		Hostname:  a.plan.Identity.Pod,
		Version:   a.plan.Behavior.Version,
		Message:   a.plan.Behavior.Message,
		Namespace: a.plan.Identity.Namespace,
		Workload:  a.plan.Identity.Workload,
		PodIP:     a.plan.PodIP,
	})
}

func (a *app) serveVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": a.plan.Behavior.Version})
}

// serveStatus answers with the status code in the path (200..599).
func (a *app) serveStatus(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.PathValue("code"))
	if err != nil || code < 200 || code > 599 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "status code must be an integer in [200, 599]"})
		return
	}
	writeJSON(w, code, map[string]int{"status": code})
}

// serveDelay waits the number of seconds in the path (fractions allowed) and answers 200.
func (a *app) serveDelay(w http.ResponseWriter, r *http.Request) {
	s, err := strconv.ParseFloat(r.PathValue("seconds"), 64)
	if err != nil || math.IsNaN(s) || s < 0 || s > maxLatency.Seconds() {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "delay must be a number of seconds in [0, 600]"})
		return
	}
	if sleep(r.Context(), time.Duration(s*float64(time.Second))) != nil {
		return // the client went away
	}
	writeJSON(w, http.StatusOK, map[string]float64{"delay": s})
}

// serveHeaders returns the request headers, with Host, as JSON.
func (a *app) serveHeaders(w http.ResponseWriter, r *http.Request) {
	h := r.Header.Clone()
	h.Set("Host", r.Host)
	writeJSON(w, http.StatusOK, h)
}

// serveEcho returns the request body with its content type.
func (a *app) serveEcho(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEchoBytes))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// serveToken issues a short-lived opaque token, as podinfo's POST /token
// does: the acceptance tests of Flagger's guides post to it and grep the
// answer for "token".
func (a *app) serveToken(w http.ResponseWriter, r *http.Request) {
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxEchoBytes)); err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
		return
	}
	expires := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	token := base64.RawURLEncoding.EncodeToString([]byte(a.plan.Identity.Pod + "|" + expires))
	writeJSON(w, http.StatusOK, map[string]string{"token": token, "expires_at": expires})
}

func serveOK(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "OK"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// statusRecorder remembers the status code written through it; 0 means nothing was
// written.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
