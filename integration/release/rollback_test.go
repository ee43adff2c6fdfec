package release

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/harness"
)

// hookServer is a real webhook for serin's hooks: it answers 200 until
// told to fail, then 500, and counts the calls by hook type. The
// confirm-promotion gate answers 403 while closed.
type hookServer struct {
	*httptest.Server
	fail  atomic.Bool
	gate  atomic.Bool // closed when true
	mu    sync.Mutex
	calls map[string]int
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{calls: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Type     string `json:"type"`
			Checksum string `json:"checksum"`
		}
		_ = json.NewDecoder(r.Body).Decode(&p)
		h.mu.Lock()
		h.calls[p.Type]++
		h.mu.Unlock()
		if p.Type == string(v1alpha1.HookConfirmPromotion) && h.gate.Load() {
			http.Error(w, "promotion not approved", http.StatusForbidden)
			return
		}
		if h.fail.Load() {
			http.Error(w, "canary smoke tests failed", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) count(typ string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[typ]
}

// testRollbackAndCLI fails a release with a real failing rollout hook and
// checks the rollback end to end, then drives the next releases with the
// serin CLI: wait, get, pause, resume, abort, retry and promote.
func testRollbackAndCLI(t *testing.T, s *harness.Serin) {
	e := newEnvWith(t, 4*time.Minute, s)
	hook := newHookServer(t)
	w := e.watchCanary()
	cn := canary(e.ns, v1alpha1.CanaryAnalysis{StepWeight: 10, MaxWeight: 50, Threshold: 2,
		Webhooks: []v1alpha1.CanaryWebhook{
			{Name: "smoke", Type: v1alpha1.HookRollout, URL: hook.URL, Timeout: "5s"},
			{Name: "approval", Type: v1alpha1.HookConfirmPromotion, URL: hook.URL, Timeout: "5s"},
		}})
	e.apply(cn, app{Version: "6.0.2"}.deployment(e.ns))
	e.waitFor(w, 0, time.Minute, "initialized", phaseIs(v1alpha1.PhaseInitialized))
	v2Pods := e.pods("app=podinfo")
	conn := harness.XDSClient(t, e.s.XDSAddress(), "rollback", "podinfo."+e.ns+":9999")
	obs := observeEDS(t, e.s.XDSAddress(), "rollback-observer", "serin/"+e.ns+"/podinfo/9999")
	if tally := harness.Send(e.ctx, conn, 100); tally.Versions["6.0.2"] != 100 {
		t.Fatalf("v2 traffic: %+v", tally)
	}

	// v3: the rollout hook passes at first, then fails from weight 20 on.
	from := w.len()
	e.apply(app{Version: "6.0.3"}.deployment(e.ns))
	v3 := e.deploymentObj("podinfo").Annotations[v1alpha1.AnnotationCandidateRevision]
	wait := e.start(mustBinary(t), "--kubeconfig="+e.c.Kubeconfig, "-n", e.ns, "wait", "podinfo", "--timeout=2m")
	e.waitFor(w, from, 30*time.Second, "v3 at weight 20", func(r record) bool {
		return r.CanaryRevision == v3 && r.Weight == 20 && r.appliedWeight()
	})
	if tally := harness.Send(e.ctx, conn, 200); tally.Versions["6.0.3"] == 0 {
		t.Fatalf("no canary traffic at weight 20: %+v", tally)
	}
	hook.fail.Store(true)
	failed, _ := e.waitFor(w, from, 30*time.Second, "rolled back", phaseIs(v1alpha1.PhaseFailed))
	if failed.Weight != 0 || failed.Promoted == nil || failed.Promoted.Status != "False" {
		t.Fatalf("failed status: %+v", failed)
	}

	// The copy goes only once the data plane routes everything to stable.
	e.copyGone(30 * time.Second)
	if last, ok := obs.last(); !ok || last.Weight != 0 || last.Stable != 100 {
		t.Fatalf("data plane after rollback: %+v", last)
	}
	tally := harness.Send(e.ctx, conn, 300)
	if tally.Versions["6.0.2"] != 300 || tally.Errors > 0 {
		t.Fatalf("traffic after rollback: %+v", tally)
	}
	d := e.deploymentObj("podinfo")
	if !d.Spec.Paused || d.Spec.Template.Spec.Containers[0].Image != "ghcr.io/stefanprodan/podinfo:6.0.3" {
		t.Fatalf("deployment after rollback: paused=%v image=%s", d.Spec.Paused, d.Spec.Template.Spec.Containers[0].Image)
	}
	samePods(t, v2Pods, e.pods("app=podinfo"))
	c := e.canaryObj()
	if !slices.Contains(c.Status.FailedRevisions, v3) || c.Status.Phase != v1alpha1.PhaseFailed {
		t.Fatalf("canary after rollback: %+v", c.Status)
	}
	e.wait(wait, "serin wait", 10*time.Second)
	if wait.code == 0 {
		t.Fatalf("serin wait exited 0 on a failed release: %s", wait.out.String())
	}
	target := "podinfo." + e.ns
	e.eventually(10*time.Second, "rollback events", func() (bool, string) {
		evs := e.canaryEvents()
		missing, ok := inOrder(evs, []string{"Advance " + target + " canary weight 20",
			"Halt " + target + " advancement: rollout hook failed", "Rolling back " + target + " failed checks threshold reached 2",
			"Canary failed! Scaling down " + target})
		return ok, fmt.Sprintf("missing %q in\n%s", missing, strings.Join(evs, "\n"))
	})
	out := e.mustSerin("get")
	t.Logf("serin get after rollback:\n%s", out)
	if !rowHas(out, "podinfo", "Failed", "2/2", "rollout hook failed") {
		t.Fatalf("serin get after rollback:\n%s", out)
	}
	if out, code := e.serin(e.ctx, "wait", "podinfo", "--timeout=10s"); code != 1 {
		t.Fatalf("serin wait on the failed revision exited %d: %s", code, out)
	}

	// Re-applying v3 starts nothing.
	e.apply(app{Version: "6.0.3"}.deployment(e.ns))
	e.stays(w, 3*time.Second, "re-applied v3", func(r record) bool { return r.Phase == v1alpha1.PhaseFailed && r.Weight == 0 })
	if e.deploymentObj("podinfo-canary") != nil {
		t.Fatal("re-applying the failed v3 made a canary copy")
	}

	// v4 starts a release; pause holds it, resume moves it on, abort
	// rolls it back. The promotion gate stays closed for v4, so however
	// slowly the CLI runs, pause and abort land in the analysis and never
	// in a promotion that has started rolling the Deployment.
	hook.fail.Store(false)
	hook.gate.Store(true)
	from = w.len()
	e.apply(app{Version: "6.0.4"}.deployment(e.ns))
	v4 := e.deploymentObj("podinfo").Annotations[v1alpha1.AnnotationCandidateRevision]
	e.waitFor(w, from, 30*time.Second, "v4 at weight 10", func(r record) bool {
		return r.Phase == v1alpha1.PhaseProgressing && r.CanaryRevision == v4 && r.Weight == 10 && r.appliedWeight()
	})
	e.mustSerin("pause", "podinfo")
	paused, at := e.waitFor(w, from, 10*time.Second, "paused", func(r record) bool { return r.Message == "release paused" })
	e.stays(w, 3*time.Second, "paused release", func(r record) bool {
		return analysing(r) && r.Weight == paused.Weight
	})
	e.mustSerin("resume", "podinfo")
	_, at = e.waitFor(w, at, 10*time.Second, "resumed", func(r record) bool {
		return analysing(r) && r.Message != "release paused"
	})
	e.mustSerin("pause", "podinfo")
	e.waitFor(w, at, 10*time.Second, "paused again", func(r record) bool {
		return analysing(r) && r.Message == "release paused"
	})
	e.mustSerin("abort", "podinfo")
	e.waitFor(w, from, 10*time.Second, "aborted", func(r record) bool {
		return r.Phase == v1alpha1.PhaseFailed && strings.Contains(r.Message, "aborted by user")
	})
	e.mustSerin("resume", "podinfo")
	e.copyGone(30 * time.Second)
	if out, code := e.serin(e.ctx, "wait", "podinfo", "--timeout=10s"); code != 1 {
		t.Fatalf("serin wait on the aborted v4 exited %d: %s", code, out)
	}
	samePods(t, v2Pods, e.pods("app=podinfo"))

	// Back to v3, which failed: held and not released.
	e.apply(app{Version: "6.0.3"}.deployment(e.ns))
	e.stays(w, 3*time.Second, "v3 re-applied after v4", func(r record) bool {
		return r.Phase == v1alpha1.PhaseFailed && r.Weight == 0
	})
	if e.deploymentObj("podinfo-canary") != nil || !e.deploymentObj("podinfo").Spec.Paused {
		t.Fatal("the failed v3 re-applied after v4 was released")
	}

	// serin retry runs v3 again; serin promote ends it early.
	hook.gate.Store(false)
	from = w.len()
	e.mustSerin("retry", "podinfo")
	wait = e.start(mustBinary(t), "--kubeconfig="+e.c.Kubeconfig, "-n", e.ns, "wait", "podinfo", "--timeout=2m")
	e.waitFor(w, from, 30*time.Second, "v3 retried", func(r record) bool {
		return r.Phase == v1alpha1.PhaseProgressing && r.CanaryRevision == v3 && r.Weight == 10 && r.appliedWeight()
	})
	before := w.last()
	out = e.mustSerin("get", "podinfo")
	after := w.last()
	t.Logf("serin get during the retried release:\n%s", out)
	shown := false
	for wt := before.Weight; wt <= after.Weight; wt += 10 {
		shown = shown || rowHas(out, "podinfo", "Progressing", fmt.Sprintf(" %d ", wt), fmt.Sprintf("[%d]", wt))
	}
	if !shown {
		t.Fatalf("serin get during the retried release (weight %d..%d):\n%s", before.Weight, after.Weight, out)
	}
	// Steps run every second and the CLI may take seconds to start on a
	// loaded machine, so judge from what the watch had seen when the request
	// returned: one step may be in flight (and seen late), no more.
	e.mustSerin("promote", "podinfo")
	landed := w.len()
	atPromote := int32(0)
	for _, r := range w.since(from)[:landed-from] {
		atPromote = max(atPromote, r.Weight)
	}
	done, _ := e.waitFor(w, from, time.Minute, "v3 promoted", phaseIs(v1alpha1.PhaseSucceeded))
	for _, r := range w.since(landed) {
		// Analysis steps end; promotion itself cuts all traffic over to the
		// copy (weight 100 while Promoting).
		if r.At.Before(done.At) && r.Phase != v1alpha1.PhasePromoting && r.Weight > atPromote+20 {
			t.Fatalf("serin promote did not skip the remaining steps (weight %d when it landed): %s", atPromote, r)
		}
	}
	e.wait(wait, "serin wait", 30*time.Second)
	if wait.code != 0 {
		t.Fatalf("serin wait exited %d after promotion: %s", wait.code, wait.out.String())
	}
	e.copyGone(30 * time.Second)
	for _, p := range e.pods("app=podinfo") {
		if podVersion(p) != "6.0.3" {
			t.Fatalf("after the retried release pod %s runs %s", p.Name, podVersion(p))
		}
	}
	if tally := harness.Send(e.ctx, conn, 200); tally.Versions["6.0.3"] != 200 {
		t.Fatalf("traffic after the retried release: %+v", tally)
	}
	if hook.count("rollout") == 0 {
		t.Fatal("the rollout hook was never called")
	}
}

// analysing reports whether r is a release in its analysis: progressing,
// or at the last step waiting for its promotion gate.
func analysing(r record) bool {
	return r.Phase == v1alpha1.PhaseProgressing || r.Phase == v1alpha1.PhaseWaitingPromotion
}

// stays checks that every status for d satisfies cond.
func (e *env) stays(w *watcher, d time.Duration, what string, cond func(record) bool) {
	e.t.Helper()
	from := w.len() - 1
	time.Sleep(d)
	for _, r := range w.since(max(0, from)) {
		if !cond(r) {
			e.t.Fatalf("%s: status %s", what, r)
		}
	}
}

// samePods fails unless got are exactly the pods of want (names and UIDs).
func samePods(t *testing.T, want, got []corev1.Pod) {
	t.Helper()
	key := func(ps []corev1.Pod) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name+"/"+string(p.UID))
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(key(want), key(got)) {
		t.Fatalf("stable pods changed:\nwant %v\ngot  %v", key(want), key(got))
	}
}

// rowHas reports whether a line of a table names row and contains every
// one of cells.
func rowHas(table, row string, cells ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, row+" ") {
			continue
		}
		ok := true
		for _, c := range cells {
			ok = ok && strings.Contains(line, c)
		}
		if ok {
			return true
		}
	}
	return false
}

func mustBinary(t *testing.T) string {
	bin, err := harness.Binary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
