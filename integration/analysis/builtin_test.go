package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// builtinSpec judges on serin's built-in metrics from Prometheus.
const builtinSpec = `
progressDeadlineSeconds: 60
analysis:
  interval: 3s
  threshold: 2
  stepWeight: 20
  maxWeight: 60
  metrics:
  - name: request-success-rate
    thresholdRange: {min: 99}
  - name: request-duration
    thresholdRange: {max: 500}
  alerts:
  - name: everything
    providerRef: {name: generic}
  - name: on-call
    severity: error
    providerRef: {name: slack}
`

// receiver is a local webhook that keeps every JSON body it gets.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			v = map[string]any{"invalid": fmt.Sprintf("%s %s %q: %v", req.Method, req.Header.Get("Content-Type"), b, err)}
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, v)
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) received() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.bodies...)
}

// mesh is whose telemetry the built-in metrics are read from.
type mesh struct {
	// provider is the Canary's spec.provider ("" for none).
	provider string
	// podAnnotations mesh podinfo's pods (a YAML flow map, or "").
	podAnnotations string
	// series is the request counter the checks read; absent one the
	// pods do not expose ("" for none).
	series, absent string
	// trafficSplit: the release is routed by an SMI TrafficSplit, whose
	// CRD the scenario installs once the release halted without it.
	trafficSplit bool
}

var (
	// istioMesh: no provider; podsim exposes Istio's series (and Linkerd's).
	istioMesh = mesh{series: "istio_requests_total"}
	// linkerdMesh: provider linkerd, and pods meshed by Linkerd, which
	// expose Linkerd's series only.
	linkerdMesh = mesh{provider: "linkerd", podAnnotations: "{linkerd.io/inject: enabled}",
		series: "response_total", absent: "istio_requests_total", trafficSplit: true}
)

// TestBuiltinMetrics: on Prometheus's view of a mesh's telemetry, a
// healthy v2 is promoted, a v3 with 30% errors is rolled back on
// request-success-rate and a v4 with 1s latency on request-duration; alerts
// reach a generic webhook (every message) and a Slack one (errors only).
// With Linkerd, the release is also carried by an SMI TrafficSplit: halted
// with the missing kind named until its CRD is installed, then at every
// held step the split carries the step's weight, after promotion and
// rollback it is back on the primary, and deleting the Canary removes it.
func (e *env) testBuiltinMetrics(m mesh) func(*testing.T) {
	return func(t *testing.T) { e.builtinMetrics(t, m) }
}

func (e *env) builtinMetrics(t *testing.T, m mesh) {
	generic, slack := newReceiver(t), newReceiver(t)
	a := &app{e: e, t: t, ns: e.c.Namespace(t), replicas: 2, podAnnotations: m.podAnnotations}
	e.applyAlertProviders(a, generic, slack)
	spec := builtinSpec
	if m.provider != "" {
		spec = "provider: " + m.provider + "\n" + spec
	}
	a.applyCanary(spec)
	a.deploy("1.0.0", nil)
	w := a.watch()
	if m.trafficSplit {
		a.installSMIAfterRejection()
	}
	a.waitPhase(v1alpha1.PhaseInitialized, time.Minute)
	l := a.startLoad(40)

	// v2, healthy: promoted.
	start := time.Now()
	a.deploy("2.0.0", nil)
	if m.trafficSplit {
		t.Logf("TrafficSplit carried the weights %v of the steps it was held at", a.waitSplitAtStep(90*time.Second))
	}
	st := a.waitPhase(v1alpha1.PhaseSucceeded, 90*time.Second)
	if m.trafficSplit {
		a.waitSplit(split{canary: 0, primary: 100}, 30*time.Second)
	}
	t.Logf("v2 promoted in %s", time.Since(start).Round(100*time.Millisecond))
	checkPassedOnBuiltins(t, w.since(start))
	for _, want := range []string{"Advance podinfo." + a.ns + " canary weight 20", "Advance podinfo." + a.ns + " canary weight 60", "Promotion completed"} {
		if !a.hasEvent(want) {
			t.Errorf("no event %q", want)
		}
	}
	if st.FailedChecks != 0 {
		t.Errorf("v2 had %d failed checks", st.FailedChecks)
	}
	e.checkSeries(t, a.ns, m)
	if got := l.during(func() { time.Sleep(time.Second) }); got["2.0.0"] == 0 || len(got) != 1 {
		t.Errorf("after promotion, answers by version %v; want 2.0.0 only", got)
	}

	// v3, 30% errors: rolled back on the success rate.
	start = time.Now()
	a.deploy("3.0.0", map[string]string{"ERROR_RATE": "0.3"})
	st = a.waitPhase(v1alpha1.PhaseFailed, 90*time.Second)
	t.Logf("v3 rolled back in %s: %s", time.Since(start).Round(100*time.Millisecond), st.Message)
	if got := sample(st.LastVerdict, "request-success-rate/canary"); !strings.Contains(got, "(min 99%) fail") {
		t.Errorf("v3's last verdict %q: success rate %q did not fail", st.LastVerdict, got)
	}
	if !a.hasEvent("Halt podinfo."+a.ns+" advancement success rate", "< 99%") {
		t.Error("no event says the success rate was below 99%")
	}
	if l.firstSeen("3.0.0").IsZero() {
		t.Error("v3 never received traffic")
	}
	if m.trafficSplit {
		a.waitSplit(split{canary: 0, primary: 100}, 30*time.Second)
	}
	// Failed is written with weight 0; give the proxies a moment to apply it.
	time.Sleep(time.Second)
	if got := l.during(func() { time.Sleep(time.Second) }); got["2.0.0"] == 0 || len(got) != 1 {
		t.Errorf("after the rollback, answers by version %v; want 2.0.0 only", got)
	}

	// v4, 1s latency: rolled back on request-duration.
	start = time.Now()
	a.deploy("4.0.0", map[string]string{"LATENCY_MS": "1000"})
	st = a.waitPhase(v1alpha1.PhaseFailed, 90*time.Second)
	t.Logf("v4 rolled back in %s: %s", time.Since(start).Round(100*time.Millisecond), st.Message)
	if got := sample(st.LastVerdict, "request-duration/canary"); !strings.Contains(got, "(max 500ms) fail") {
		t.Errorf("v4's last verdict %q: request duration %q did not fail", st.LastVerdict, got)
	}
	if got := sample(st.LastVerdict, "request-success-rate/canary"); !strings.Contains(got, " pass") {
		t.Errorf("v4's last verdict %q: success rate %q did not pass", st.LastVerdict, got)
	}
	if !a.hasEvent("Halt podinfo."+a.ns+" advancement request duration", "> 500ms") {
		t.Error("no event says the request duration was above 500ms")
	}
	if !slicesContains(st.FailedRevisions, st.CanaryRevision) {
		t.Errorf("failed revisions %v miss v4's %s", st.FailedRevisions, st.CanaryRevision)
	}

	checkAlerts(t, a, generic, slack)
	if m.trafficSplit {
		a.checkSplitDeleted(time.Minute)
	}
}

// applyAlertProviders applies the AlertProviders builtinSpec names: a
// generic webhook and a Slack one whose address is in a Secret.
func (e *env) applyAlertProviders(a *app, generic, slack *receiver) {
	a.t.Helper()
	e.serin.AllowSecrets(a.t, a.ns) // the Slack address is in a Secret
	a.apply(fmt.Sprintf(`apiVersion: serin.dev/v1alpha1
kind: AlertProvider
metadata: {name: generic}
spec: {type: generic, address: %q}
---
apiVersion: v1
kind: Secret
metadata: {name: slack-url}
stringData: {address: %q}
---
apiVersion: serin.dev/v1alpha1
kind: AlertProvider
metadata: {name: slack}
spec: {type: slack, channel: releases, username: serin-tests, secretRef: {name: slack-url}}
`, generic.URL+"/hooks/generic", slack.URL+"/services/T000/B000/XXX"))
}

// checkSeries asserts that Prometheus holds the namespace's requests in
// the series the checks read, and none in the series the pods lack.
func (e *env) checkSeries(t *testing.T, ns string, m mesh) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, want := range map[string]bool{m.series: true, m.absent: false} {
		if name == "" {
			continue
		}
		vec, err := e.prom.Vector(ctx, fmt.Sprintf(`count(%s{namespace=%q})`, name, ns))
		if err != nil {
			t.Fatal(err)
		}
		if has := len(vec) > 0 && vec[0].Value > 0; has != want {
			t.Errorf("Prometheus has series %s in %s: %v, want %v", name, ns, has, want)
		}
	}
}

// checkPassedOnBuiltins asserts that the release's checks judged both
// built-in metrics from Prometheus with both tracks' values.
func checkPassedOnBuiltins(t *testing.T, seen []snapshot) {
	t.Helper()
	for _, s := range seen {
		v := s.status.LastVerdict
		if strings.HasPrefix(v, "Promote: ") &&
			strings.Contains(v, "request-success-rate/canary=") && strings.Contains(v, "(min 99%) pass") &&
			strings.Contains(v, "request-duration/canary=") && strings.Contains(v, "(max 500ms) pass") &&
			strings.Contains(v, "request-success-rate/stable=") && strings.Contains(v, "from prometheus") {
			return
		}
	}
	t.Errorf("no passed check on both built-in metrics from Prometheus among %d statuses", len(seen))
}

func checkAlerts(t *testing.T, a *app, generic, slack *receiver) {
	t.Helper()
	// Alerts are sent in the background: give the last ones a moment.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && countText(slack.received(), "Rolling back") < 2 {
		time.Sleep(200 * time.Millisecond)
	}
	gen := generic.received()
	for _, want := range []string{"New revision detected", "Promotion completed", "success rate", "request duration"} {
		if countText(gen, want) == 0 {
			t.Errorf("generic receiver got no message with %q", want)
		}
	}
	var severities = map[string]int{}
	for _, b := range gen {
		if b["name"] != appName || b["namespace"] != a.ns || b["phase"] == nil || b["message"] == nil {
			t.Errorf("generic payload %v lacks name, namespace, phase or message", b)
			break
		}
		severities[fmt.Sprint(b["severity"])]++
	}
	if severities["info"] == 0 || severities["error"] == 0 {
		t.Errorf("generic receiver severities %v; want info and error", severities)
	}
	sl := slack.received()
	if len(sl) == 0 {
		t.Fatal("slack receiver got nothing")
	}
	for _, b := range sl {
		atts, _ := b["attachments"].([]any)
		if b["channel"] != "releases" || b["username"] != "serin-tests" || len(atts) != 1 {
			t.Fatalf("slack payload %v: want channel, username and one attachment", b)
		}
		att, _ := atts[0].(map[string]any)
		if att["color"] != "danger" {
			t.Errorf("slack got a %v message %q; its alert asks for errors only", att["color"], att["text"])
		}
		if att["author_name"] != appName+"."+a.ns {
			t.Errorf("slack attachment author %v", att["author_name"])
		}
	}
	if countText(sl, "Rolling back podinfo."+a.ns) < 2 || countText(sl, "Promotion completed") > 0 {
		t.Errorf("slack messages %v: want both rollbacks and no promotion", texts(sl))
	}
}

// texts are the message texts of generic and Slack payloads.
func texts(bodies []map[string]any) []string {
	var out []string
	for _, b := range bodies {
		if m, ok := b["message"].(string); ok {
			out = append(out, m)
		}
		if atts, ok := b["attachments"].([]any); ok {
			for _, a := range atts {
				if am, ok := a.(map[string]any); ok {
					out = append(out, fmt.Sprint(am["text"]))
				}
			}
		}
	}
	return out
}

func countText(bodies []map[string]any, part string) int {
	n := 0
	for _, s := range texts(bodies) {
		if strings.Contains(s, part) {
			n++
		}
	}
	return n
}

// sample is one sample of a status's lastVerdict summary, e.g. for
// "request-success-rate/canary": "71.2% (min 99%) fail n=40 from prometheus".
func sample(verdict, key string) string {
	_, rest, ok := strings.Cut(verdict, key+"=")
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, "; ")
	return v
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
