package rollout

import (
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// simWorld is a simulated cluster around Step, driven by a virtual clock
// of one-second ticks. Each tick the world's controllers move (Deployment
// controller, canary copy, data plane) and serin reconciles when the
// controller-runtime queue would run it: after a change of a watched
// object (the Canary, including its status; the Deployment; the copy; a
// data-plane wakeup) or when the requeue time Step asked for is due.
// Analysis verdicts and hook results are not watched: the engine only
// learns of them when it asks.
type simWorld struct {
	cfg  simConfig
	spec *v1alpha1.CanarySpec
	seed uint64
	tick int

	deploy        *appsv1.Deployment
	curHash       string
	deployVersion int
	rs            []*simRS
	names         map[string]string
	copy          *simCopy
	dp            simDataPlane
	// forcedDelete is set by a ForceScaleDown event of the current step.
	forcedDelete bool
	hooks        map[v1alpha1.HookType]bool
	verdict      string

	// The Canary: its status and annotations, whether it is being
	// deleted, and whether it is gone (for good when takeoverAt < 0).
	status     v1alpha1.CanaryStatus
	action     string
	paused     bool
	deleting   bool
	gone       bool
	takeoverAt int

	// serin's queue: a watched object changed; the requeue tick (-1: none);
	// a crash after this many actions of the next reconcile (-1: none).
	dirty      bool
	nextAt     int
	crashAfter int
	obs        struct {
		version int
		target  Target
	}

	check simChecker
	// trace, when set, is told every event and reconcile.
	trace io.Writer
}

var simStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newSimWorld(cfg simConfig, seed uint64) *simWorld {
	w := &simWorld{cfg: cfg, spec: cfg.spec(), seed: seed, names: map[string]string{}, verdict: "Promote",
		nextAt: -1, crashAfter: -1, takeoverAt: -1, dirty: true}
	w.deploy = newDeployment(cfg)
	w.curHash = v1alpha1.TemplateHash(&w.deploy.Spec.Template)
	w.names[w.curHash] = "v1"
	w.rs = []*simRS{{hash: w.curHash, replicas: cfg.Replicas, ready: cfg.Replicas}}
	w.dp.published, w.dp.version = true, 1
	w.hooks = map[v1alpha1.HookType]bool{}
	w.openGates()
	w.obs.version = -1
	w.check.init(w)
	return w
}

func (w *simWorld) now() time.Time { return simStart.Add(time.Duration(w.tick) * time.Second) }

// delay is a number of ticks in [lo, hi] that depends only on the seed,
// the tick and what it is for, so removing an event while shrinking does
// not change how long the world takes for anything else.
func (w *simWorld) delay(what string, lo, hi int) int {
	x := w.seed ^ uint64(w.tick)*0x9e3779b97f4a7c15
	for _, c := range what {
		x = (x ^ uint64(c)) * 0x100000001b3
	}
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	return lo + int(x%uint64(hi-lo+1))
}

func (w *simWorld) openGates() {
	for _, h := range simHookTypes {
		w.hooks[h] = h != v1alpha1.HookRollback
	}
}

// advance runs one tick.
func (w *simWorld) advance() {
	w.tick++
	w.deploymentTick()
	w.copyTick()
	w.dataPlaneTick()
	w.takeover()
	if !w.gone && (w.dirty || w.nextAt >= 0 && w.tick >= w.nextAt) {
		w.reconcile()
	}
	w.check.tick(w)
}

// restart drops everything serin holds in memory: its queue and what the
// data plane was last told (it serves the status again a tick or two
// later; until then TrafficStatus knows nothing).
func (w *simWorld) restart() {
	w.nextAt, w.dirty = -1, true
	w.dp.published, w.dp.publishAt = false, w.tick+w.delay("publish", 2, 3)
}

// takeover makes a new Canary from the Deployment's annotations a few
// seconds after the last one was deleted, as adopt does.
func (w *simWorld) takeover() {
	if !w.gone || w.takeoverAt < 0 || w.tick < w.takeoverAt {
		return
	}
	if d := w.deploy; !v1alpha1.Managed(d.Annotations) || d.Annotations[v1alpha1.AnnotationOptedInBy] != "" {
		w.takeoverAt = -1 // opted out meanwhile: no Canary
		return
	}
	w.cfg.Owner = "annotations"
	w.spec = w.cfg.spec()
	w.status, w.action, w.paused, w.deleting, w.gone, w.takeoverAt = v1alpha1.CanaryStatus{}, "", false, false, false, -1
	w.dirty = true
}

// --- inputs ---

// apply makes an event happen.
func (w *simWorld) apply(e simEvent) {
	if w.trace != nil {
		fmt.Fprintf(w.trace, "%s\n", e)
	}
	switch e.Op {
	case "apply", "replace", "scale", "opt-out":
		w.applyUser(e)
	case "hook":
		typ, state, _ := strings.Cut(e.Arg, " ")
		w.hooks[v1alpha1.HookType(typ)] = state == "open"
	case "gates":
		w.openGates()
	case "verdict":
		w.verdict = e.Arg
	case "nack":
		w.nack()
	case "stall", "recover":
		w.dp.stalled = e.Op == "stall"
	case "restart":
		w.restart()
	case "crash":
		w.crashAfter, _ = strconv.Atoi(e.Arg)
	default:
		w.applyCanary(e)
	}
}

// applyCanary changes the Canary: its annotations, or deletes it.
func (w *simWorld) applyCanary(e simEvent) {
	if w.gone {
		return // no Canary to change
	}
	switch e.Op {
	case "action":
		w.action = e.Arg
	case "pause", "resume":
		w.paused = e.Op == "pause"
	case "delete":
		w.deleting = true
	default:
		panic(fmt.Sprintf("unknown event %q", e))
	}
	w.dirty = true
}

// applyUser writes the user's Deployment.
func (w *simWorld) applyUser(e simEvent) {
	w.userWrite(func(d *appsv1.Deployment) {
		switch e.Op {
		case "apply", "replace":
			d.Spec.Template.Spec.Containers[0].Image = "ghcr.io/podinfo:" + e.Arg
		case "scale":
			n, _ := strconv.Atoi(e.Arg)
			d.Spec.Replicas = ptr.To(int32(n))
		}
		if e.Op == "replace" {
			delete(d.Annotations, v1alpha1.AnnotationCandidateRevision)
			delete(d.Annotations, v1alpha1.AnnotationStableRevision)
			d.Spec.Paused = false
		}
		if e.Op == "opt-out" && w.cfg.Owner == "annotations" {
			delete(d.Annotations, v1alpha1.AnnotationCanary)
		}
	})
	if e.Op == "opt-out" && !w.gone {
		// sync deletes the Canary of a Deployment that opted out (or, for a
		// Canary applied by hand, the user deletes it).
		w.deleting, w.dirty = true, true
	}
}

// --- serin ---

// simStep is one reconcile as the checks see it: the input Step was
// given, the answers to its Needs, and whether serin crashed before it
// carried all the actions out.
type simStep struct {
	in        Input
	verdict   *Verdict
	hooks     map[v1alpha1.HookType]HookResult
	crashed   bool
	finalized bool
}

// reconcile is Reconciler.Reconcile: observe, step (answering Needs),
// write the status, then carry the actions out, in order.
func (w *simWorld) reconcile() {
	w.dirty = false
	rec := &simStep{in: w.input(), hooks: map[v1alpha1.HookType]HookResult{}}
	out, ok := w.step(rec)
	if !ok {
		return
	}
	prev := w.status
	w.status = out.Status
	acts := out.Actions
	if w.crashAfter >= 0 {
		rec.crashed, acts = true, acts[:min(len(acts), w.crashAfter)]
		w.crashAfter = -1
	}
	for _, a := range acts {
		w.do(a, rec)
	}
	w.nextAt = -1
	if out.RequeueAfter > 0 {
		w.nextAt = w.tick + int((out.RequeueAfter+time.Second-1)/time.Second)
	}
	if !reflect.DeepEqual(prev, out.Status) {
		w.dirty = true // the status update is a Canary event
	}
	if rec.crashed {
		w.restart()
	}
	w.check.step(w, rec)
	w.traceStep(rec, prev, out, acts)
}

// traceStep tells the trace what one reconcile saw and did.
func (w *simWorld) traceStep(rec *simStep, prev v1alpha1.CanaryStatus, out Output, acts []Action) {
	if w.trace == nil {
		return
	}
	st := &w.status
	fmt.Fprintf(w.trace, "t=%ds reconcile: %s %s → %s %s", w.tick-w.check.t0, prev.Phase, trafficOfStatus(&prev), st.Phase, trafficOfStatus(st))
	if rec.verdict != nil {
		fmt.Fprintf(w.trace, ", verdict %s", rec.verdict.Decision)
	}
	for _, typ := range slices.Sorted(maps.Keys(rec.hooks)) {
		fmt.Fprintf(w.trace, ", hook %s passed=%v", typ, rec.hooks[typ].Passed)
	}
	for _, a := range acts {
		switch a := a.(type) {
		case EnsureCopy:
			fmt.Fprintf(w.trace, ", EnsureCopy(%s, %d)", w.name(a.Revision), a.Replicas)
		case PromoteTarget:
			fmt.Fprintf(w.trace, ", PromoteTarget(%s)", w.name(a.Revision))
		case HoldTarget:
			fmt.Fprintf(w.trace, ", HoldTarget(%s, %s)", w.name(a.Candidate), w.name(a.Stable))
		case Event:
			fmt.Fprintf(w.trace, ", event %q", a.Message)
		default:
			fmt.Fprintf(w.trace, ", %T", a)
		}
	}
	if rec.crashed {
		fmt.Fprintf(w.trace, ", then crashed")
	}
	fmt.Fprintf(w.trace, ", requeue %s\n    %s\n", out.RequeueAfter, w.state())
}

// input is Reconciler.input.
func (w *simWorld) input() Input {
	d := w.deploy
	revert := !v1alpha1.Managed(d.Annotations) || d.Annotations[v1alpha1.AnnotationOptedInBy] != "" || w.deleting && w.spec.RevertOnDeletion
	if w.obs.version != w.deployVersion {
		w.obs.version, w.obs.target = w.deployVersion, ObserveTarget(d)
	}
	return Input{
		Name: simName, Namespace: simNamespace, Spec: w.spec, Status: *w.status.DeepCopy(),
		Action: w.action, Paused: w.paused, Deleting: w.deleting, Revert: revert, Now: w.now(),
		Obs: Observations{Target: w.obs.target, Copy: w.observeCopy(), Traffic: w.traffic()},
	}
}

// step is Reconciler.step: Step, and its Needs answered, four rounds at
// most. ok is false when Step panicked.
func (w *simWorld) step(rec *simStep) (out Output, ok bool) {
	in := rec.in
	in.Status = *rec.in.Status.DeepCopy()
	defer func() {
		if p := recover(); p != nil {
			w.fail("panic", "Step panicked: %v", p)
			ok = false
		}
	}()
	for range 4 {
		out = Step(in)
		if out.Needs == nil {
			return out, true
		}
		if out.Needs.Verdict {
			v := w.answerVerdict()
			in.Obs.Verdict, rec.verdict = &v, &v
		}
		for _, typ := range out.Needs.Hooks {
			if in.Obs.Hooks == nil {
				in.Obs.Hooks = map[v1alpha1.HookType]HookResult{}
			}
			r := HookResult{Passed: w.hooks[typ], Message: fmt.Sprintf("%s hook passed=%v", typ, w.hooks[typ])}
			in.Obs.Hooks[typ], rec.hooks[typ] = r, r
		}
	}
	return Output{Status: in.Status, RequeueAfter: time.Second}, true
}

const simHoldMessage = "Halt podinfo.test advancement: not enough evidence yet"

// answerVerdict is the Analyzer; an error becomes a failed check, as in
// Reconciler.step.
func (w *simWorld) answerVerdict() Verdict {
	switch w.verdict {
	case "PromoteEarly":
		return Verdict{Decision: Promote, Early: true, Message: "canary is decisively as good as stable"}
	case "Hold":
		return Verdict{Decision: Hold, Message: simHoldMessage}
	case "HoldFailed":
		return Verdict{Decision: Hold, FailedCheck: true, Message: "Halt podinfo.test advancement success rate 70.00% < 99%"}
	case "Rollback":
		return Verdict{Decision: Rollback, Message: "Rolling back podinfo.test: canary error rate 30% > stable 0% + 1pp"}
	case "NoData":
		return Verdict{Decision: NoData, Message: "Halt podinfo.test advancement no traffic reached the canary"}
	case "Error":
		return Verdict{Decision: Hold, FailedCheck: true, Message: "Halt podinfo.test advancement: analysis failed: prometheus: connection refused"}
	}
	return Verdict{Decision: Promote, Message: "all checks passed"}
}

// do carries one action out, as Reconciler.do.
func (w *simWorld) do(a Action, rec *simStep) {
	switch a := a.(type) {
	case EnsureCopy:
		w.ensureCopy(a)
	case DeleteCopy:
		w.deleteCopy()
	case PromoteTarget:
		w.mergePatch(map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{v1alpha1.AnnotationStableRevision: a.Revision}},
			"spec":     map[string]any{"paused": false},
		})
	case UnpauseTarget:
		w.mergePatch(map[string]any{"spec": map[string]any{"paused": false}})
	case HoldTarget:
		w.mergePatch(map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{
				v1alpha1.AnnotationCandidateRevision: a.Candidate, v1alpha1.AnnotationStableRevision: a.Stable,
			}},
			"spec": map[string]any{"paused": true},
		})
	case ReleaseTarget:
		for _, p := range releasePatches(w.deploy, a.Revision) {
			w.mergePatch(p)
		}
	case Finalized:
		w.finalize(rec)
	case Event:
		// Past the progress deadline the engine deletes the copy without
		// the proxies' confirmation, and says so.
		w.forcedDelete = w.forcedDelete || a.Action == "ForceScaleDown"
	case RunHooks, Finished, EnsureServices, DeleteServices:
	default:
		panic(fmt.Sprintf("unknown action %T", a))
	}
}

// finalize removes the finalizer: the Canary is gone. A Deployment still
// opted in by its own annotation gets a new Canary after adopt's grace.
func (w *simWorld) finalize(rec *simStep) {
	rec.finalized = true
	w.gone, w.takeoverAt = true, -1
	d := w.deploy
	if v1alpha1.Managed(d.Annotations) && d.Annotations[v1alpha1.AnnotationOptedInBy] == "" {
		w.takeoverAt = w.tick + int(adoptGrace/time.Second)
	}
}
