package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The invariants the model-based test checks after every reconcile and
// every tick. Each has a short name used to group and shrink failures:
//
//	traffic-to-newest   status sends canary traffic (weight, mirror or
//	                    match) only to a copy whose ready pods run the
//	                    newest held template, the revision under release
//	copy-under-traffic  the copy is deleted or switched to another
//	                    revision only once the proxies route no canary
//	                    traffic to it (or, deleted, past the progress
//	                    deadline, with a ForceScaleDown event)
//	rise-without-check  canary traffic rises, and a release enters
//	                    promotion, only in a reconcile where a check passed
//	                    (the verdict was Promote and the rollout and
//	                    rollback hooks agreed), at the first check, through
//	                    a manual promote, skipAnalysis, or as progressive
//	                    promotion of a release already promoting
//	failed-state        Failed: no canary traffic; the copy is deleted once
//	                    weight 0 was applied; a Deployment on a failed
//	                    template stays paused
//	succeeded-state     Succeeded: no canary traffic, the copy is gone (once
//	                    weight 0 was applied), on entry every pod runs the
//	                    promoted revision and the Deployment records it as
//	                    stable, and from the next reconcile on a Deployment
//	                    on that revision is unpaused
//	action-dropped      a serin.dev/action recorded as handled was acted on
//	                    (promote: promoting or later; abort: Failed now, or
//	                    the release ended unpromoted; retry: out of Failed)
//	                    or refused with a status message that names the verb
//	given-back          a Canary finalized with Revert leaves its
//	                    Deployment unpaused, without serin's revisions
//	deadline            outside Initialized, Succeeded, Failed and
//	                    Terminated, no state lasts longer than the progress
//	                    deadline plus one interval and 5 s without a
//	                    transition (a change of phase, traffic, traffic
//	                    applied, analysis started, iterations, failed
//	                    checks or revision under release), unless status
//	                    names a
//	                    wait on a person or on the data plane's rejection
//	                    and the world agrees: a closed gate, a manual
//	                    pause, an undecided (Hold) verdict, a NACK
//	liveness            after the last event (the inputs then stay as they
//	                    are), within simLivenessIntervals analysis
//	                    intervals, the release settles (Succeeded,
//	                    Initialized or Failed, with the Deployment, copy and
//	                    traffic as those phases require, for 5 s) or waits
//	                    on something status names, as above, for the
//	                    deadline and two intervals
//	panic               Step does not panic
type simChecker struct {
	// vs are the violations found; stop is set by the first one that is
	// not soft (after which the state means little).
	vs    []*simViolation
	stop  bool
	key   progressKey
	since int
	// t0 is the tick events count from: serin has initialized by then.
	t0 int
}

// simLivenessIntervals is the liveness bound N, in analysis intervals. A
// correct engine needs at most about 25 for the largest release drawn
// (4 weights, a mirroring stage, 4 promotion steps, 3 failed checks or a
// no-data wait of up to 6 intervals, the rollout and the ACKs).
const simLivenessIntervals = 40

// simViolation is a broken invariant.
type simViolation struct {
	Invariant string
	// Class groups violations of an invariant: by default the phase.
	Class  string
	At     int // seconds after initialization
	Detail string
}

// key groups violations for reporting and shrinking.
func (v *simViolation) key() string { return v.Invariant + " " + v.Class }

func (v *simViolation) String() string {
	return fmt.Sprintf("%s at t=%ds: %s", v.key(), v.At, v.Detail)
}

// progressKey is what changes on a transition: phase, traffic (and its
// being applied), the start of the analysis, iterations, failed checks,
// the revision under release.
type progressKey struct {
	phase              v1alpha1.CanaryPhase
	traffic            simTraffic
	stepStart          time.Time
	analysing          bool
	iterations, failed int32
	canaryRev          string
}

func (c *simChecker) init(w *simWorld) { c.since = w.tick }

func (w *simWorld) fail(inv, format string, args ...any) {
	w.failClass(inv, "in phase "+string(w.status.Phase), format, args...)
}

// simSoft are the invariants whose violation leaves a state worth
// checking further: the sequence goes on after them.
var simSoft = []string{"action-dropped", "copy-under-traffic", "given-back"}

// failClass records a violation; every one but the soft ones stops the
// sequence.
func (w *simWorld) failClass(inv, class, format string, args ...any) {
	c := &w.check
	if c.stop {
		return
	}
	v := &simViolation{Invariant: inv, Class: class, At: w.tick - c.t0, Detail: fmt.Sprintf(format, args...)}
	c.stop = !slices.Contains(simSoft, inv)
	if !slices.ContainsFunc(c.vs, func(o *simViolation) bool { return o.key() == v.key() }) {
		c.vs = append(c.vs, v)
	}
}

// step checks one reconcile.
func (c *simChecker) step(w *simWorld, r *simStep) {
	c.trafficToNewest(w, r)
	c.rise(w, r)
	c.failedState(w, r)
	c.succeededState(w, r)
	c.action(w, r)
	c.givenBack(w, r)
}

func (c *simChecker) trafficToNewest(w *simWorld, r *simStep) {
	st := &w.status
	t := trafficOfStatus(st)
	if !t.toCopy() {
		return
	}
	newest := r.in.Obs.Target.TemplateHash
	cp := w.copy
	switch {
	case cp == nil:
		w.fail("traffic-to-newest", "status sends %s to the canary, but there is no canary copy", t)
	case cp.obj.Annotations[v1alpha1.AnnotationRevision] != newest || st.CanaryRevision != newest:
		w.fail("traffic-to-newest", "status sends %s to the copy of %s (release of %s) while the newest template is %s",
			t, w.name(cp.obj.Annotations[v1alpha1.AnnotationRevision]), w.name(st.CanaryRevision), w.name(newest))
	case cp.readyRev != newest || cp.readyN == 0:
		w.fail("traffic-to-newest", "status sends %s to the copy, whose %d ready pods run %s, not %s", t, cp.readyN, w.name(cp.readyRev), w.name(newest))
	}
}

func promotedPhase(p v1alpha1.CanaryPhase) bool {
	return p == v1alpha1.PhasePromoting || p == v1alpha1.PhaseFinalising || p == v1alpha1.PhaseSucceeded
}

func (c *simChecker) rise(w *simWorld, r *simStep) {
	b, a := &r.in.Status, &w.status
	rose := a.CanaryWeight > b.CanaryWeight || a.Mirroring && !b.Mirroring || a.Matching && !b.Matching
	entered := promotedPhase(a.Phase) && !promotedPhase(b.Phase)
	if !rose && !entered {
		return
	}
	first := b.AnalysisStartTime == nil && a.AnalysisStartTime != nil && !entered
	manual := a.LastHandledAction != b.LastHandledAction && strings.HasPrefix(a.LastHandledAction, v1alpha1.ActionPromote+"/")
	if r.passed(w.cfg) || first || manual || w.spec.SkipAnalysis && entered || rose && b.Phase == v1alpha1.PhasePromoting {
		return
	}
	verdict := "none asked"
	if r.verdict != nil {
		verdict = fmt.Sprintf("%s (failed check %v)", r.verdict.Decision, r.verdict.FailedCheck)
	}
	w.fail("rise-without-check", "%s → %s, phase %s → %s, without a passed check: verdict %s, hooks %v",
		trafficOfStatus(b), trafficOfStatus(a), b.Phase, a.Phase, verdict, r.hooks)
}

// passed reports whether a check passed in this reconcile.
func (r *simStep) passed(cfg simConfig) bool {
	if r.verdict == nil || r.verdict.Decision != Promote {
		return false
	}
	if cfg.hasHook(v1alpha1.HookRollout) && !r.hooks[v1alpha1.HookRollout].Passed {
		return false
	}
	rb, asked := r.hooks[v1alpha1.HookRollback]
	return !cfg.hasHook(v1alpha1.HookRollback) || asked && !rb.Passed
}

func (c *simChecker) failedState(w *simWorld, r *simStep) {
	st := &w.status
	if st.Phase != v1alpha1.PhaseFailed {
		return
	}
	switch {
	case trafficOfStatus(st).toCopy():
		w.fail("failed-state", "Failed with %s in status", trafficOfStatus(st))
	case r.crashed:
	case r.in.Status.Phase == v1alpha1.PhaseFailed && r.in.Obs.Traffic.Applied && !trafficOfStatus(&r.in.Status).toCopy() && w.copy != nil:
		w.fail("failed-state", "Failed and weight 0 applied, but the canary copy is still there")
	case slices.Contains(st.FailedRevisions, w.curHash) && !w.deploy.Spec.Paused:
		w.fail("failed-state", "Failed, but the Deployment is not paused on the failed template %s", w.name(w.curHash))
	}
}

func (c *simChecker) succeededState(w *simWorld, r *simStep) {
	st := &w.status
	if st.Phase != v1alpha1.PhaseSucceeded {
		return
	}
	entering := r.in.Status.Phase != v1alpha1.PhaseSucceeded
	d := w.deploy
	switch {
	case trafficOfStatus(st).toCopy():
		w.fail("succeeded-state", "Succeeded with %s in status", trafficOfStatus(st))
	case r.crashed:
	case w.copy != nil && (entering || r.in.Obs.Traffic.Applied && !trafficOfStatus(&r.in.Status).toCopy()):
		w.fail("succeeded-state", "Succeeded, but the canary copy is still there")
	case !entering && d.Spec.Paused && w.curHash == st.StableRevision:
		// (A hold the user ended during Finalising may leave it paused
		// for the one reconcile in which the release succeeds.)
		w.fail("succeeded-state", "Succeeded, but the Deployment is paused on %s", w.name(st.StableRevision))
	case !entering:
	case !w.podsOnly(st.StableRevision):
		w.fail("succeeded-state", "Succeeded, but not every pod of the Deployment runs the promoted %s (%s)", w.name(st.StableRevision), w.pods())
	case d.Annotations[v1alpha1.AnnotationStableRevision] != st.StableRevision:
		w.fail("succeeded-state", "Succeeded with %s, but the Deployment records stable %s", w.name(st.StableRevision), w.name(d.Annotations[v1alpha1.AnnotationStableRevision]))
	}
}

func (c *simChecker) action(w *simWorld, r *simStep) {
	a, b := &w.status, &r.in.Status
	if a.LastHandledAction == b.LastHandledAction || a.LastHandledAction == "" {
		return
	}
	verb, _, _ := strings.Cut(a.LastHandledAction, "/")
	var acted bool
	switch verb {
	case v1alpha1.ActionPromote:
		acted = promotedPhase(a.Phase)
	case v1alpha1.ActionAbort:
		// Rolled back, or the release ended unpromoted anyway (cancelled).
		acted = a.Phase == v1alpha1.PhaseFailed && b.Phase != v1alpha1.PhaseFailed ||
			a.Phase == v1alpha1.PhaseInitialized && a.CanaryRevision == "" && b.CanaryRevision != ""
	case v1alpha1.ActionRetry:
		acted = b.Phase == v1alpha1.PhaseFailed && a.Phase != v1alpha1.PhaseFailed
	}
	if acted || strings.Contains(strings.ToLower(a.Message), verb) || refused(a) {
		return
	}
	w.failClass("action-dropped", actionClass(verb, b.Phase), "%s recorded as handled in phase %s → %s, neither acted on nor refused (message %q)",
		a.LastHandledAction, b.Phase, a.Phase, a.Message)
}

// refused reports whether the ManualAction condition refuses the action
// last handled, with a reason.
func refused(st *v1alpha1.CanaryStatus) bool {
	c := apimeta.FindStatusCondition(st.Conditions, v1alpha1.ConditionManualAction)
	return c != nil && c.Reason == "Refused" && strings.HasPrefix(c.Message, st.LastHandledAction+" refused: ")
}

// actionClass groups dropped actions by what the fix would be: unknown
// verbs, a retry outside Failed, and each known verb between releases or
// in a phase of a release.
func actionClass(verb string, before v1alpha1.CanaryPhase) string {
	switch {
	case !slices.Contains([]string{v1alpha1.ActionPromote, v1alpha1.ActionAbort, v1alpha1.ActionRetry}, verb):
		return "of an unknown verb"
	case verb == v1alpha1.ActionRetry && before != v1alpha1.PhaseFailed:
		return "retry outside Failed"
	case slices.Contains([]v1alpha1.CanaryPhase{"", v1alpha1.PhaseInitializing, v1alpha1.PhaseInitialized, v1alpha1.PhaseSucceeded,
		v1alpha1.PhaseFailed, v1alpha1.PhaseTerminating, v1alpha1.PhaseTerminated}, before):
		return verb + " between releases"
	}
	return verb + " in phase " + string(before)
}

func (c *simChecker) givenBack(w *simWorld, r *simStep) {
	if !r.finalized || !r.in.Revert {
		return
	}
	d := w.deploy
	if d.Spec.Paused || d.Annotations[v1alpha1.AnnotationCandidateRevision] != "" || d.Annotations[v1alpha1.AnnotationStableRevision] != "" {
		w.fail("given-back", "the Canary was finalized with Revert, but the Deployment is %s", w.deployState())
	}
}

// tick checks the progress deadline.
func (c *simChecker) tick(w *simWorld) {
	st := &w.status
	key := progressKey{phase: st.Phase, traffic: trafficOfStatus(st), analysing: st.AnalysisStartTime != nil,
		iterations: st.Iterations, failed: st.FailedChecks, canaryRev: st.CanaryRevision}
	if st.StepStartTime != nil {
		key.stepStart = st.StepStartTime.Time
	}
	if w.gone || w.namedWait() || key != c.key || slices.Contains([]v1alpha1.CanaryPhase{"", v1alpha1.PhaseInitialized,
		v1alpha1.PhaseSucceeded, v1alpha1.PhaseFailed, v1alpha1.PhaseTerminated}, st.Phase) {
		c.key, c.since = key, w.tick
		return
	}
	limit := int((w.cfg.Deadline+w.cfg.Interval)/time.Second) + 5
	if w.tick-c.since > limit {
		w.fail("deadline", "no transition for %ds (deadline %s, interval %s): %s", w.tick-c.since, w.cfg.Deadline, w.cfg.Interval, w.state())
	}
}

// namedWait reports whether status names a wait on a person or on the
// data plane's rejection, and the world agrees.
func (w *simWorld) namedWait() bool {
	st := &w.status
	closed := func(h v1alpha1.HookType) bool { return w.cfg.hasHook(h) && !w.hooks[h] }
	switch {
	case st.Phase == v1alpha1.PhaseWaiting:
		return closed(v1alpha1.HookConfirmRollout)
	case st.Phase == v1alpha1.PhaseWaitingPromotion && closed(v1alpha1.HookConfirmPromotion):
		return true
	case st.Message == "waiting for confirm-traffic-increase approval":
		return closed(v1alpha1.HookConfirmTrafficIncrease)
	case st.Message == "release paused":
		return w.paused
	case st.Message == msgRejected:
		return w.traffic().Rejected != ""
	case st.Message == simHoldMessage:
		return w.verdict == "Hold"
	}
	return false
}

// settled reports whether the release is over and the world agrees.
func (w *simWorld) settled() bool {
	st := &w.status
	if trafficOfStatus(st).toCopy() {
		return false
	}
	// The copy goes once the proxies applied weight 0; proxies that never
	// do keep it (its phase is final: only the cleanup waits).
	copyGone := w.copy == nil || !w.traffic().Applied
	onStable := w.curHash == st.StableRevision && !w.deploy.Spec.Paused && w.podsOnly(w.curHash) && copyGone
	switch st.Phase {
	case v1alpha1.PhaseInitialized, v1alpha1.PhaseSucceeded:
		return onStable
	case v1alpha1.PhaseFailed:
		return onStable || slices.Contains(st.FailedRevisions, w.curHash) && w.deploy.Spec.Paused && copyGone
	}
	return false
}

// simLiveness watches the quiet tail after the last event.
type simLiveness struct {
	start                 int
	settledFor            int
	namedSince, lastNamed int
}

// done reports whether the tail may end: the release settled, or waits
// on something named for longer than a deadline; past the bound it
// records a liveness violation.
func (l *simLiveness) done(w *simWorld) bool {
	if w.gone && w.takeoverAt < 0 {
		return true
	}
	iv, dl := int(w.cfg.Interval/time.Second), int(w.cfg.Deadline/time.Second)
	if w.settled() {
		l.settledFor++
	} else {
		l.settledFor = 0
	}
	switch {
	case w.namedWait():
		l.lastNamed = w.tick
		if l.namedSince == 0 {
			l.namedSince = w.tick
		}
	case w.tick-l.lastNamed > iv+3:
		l.namedSince = 0
	}
	if l.settledFor >= 5 || l.namedSince > 0 && w.tick-l.namedSince >= dl+2*iv {
		return true
	}
	if w.tick-l.start > simLivenessIntervals*iv {
		w.fail("liveness", "not settled %d intervals after the last event: %s", simLivenessIntervals, w.state())
		return true
	}
	return false
}

// --- descriptions ---

func (w *simWorld) state() string {
	st := &w.status
	s := fmt.Sprintf("phase %s, %s, canary %s, stable %s, message %q; Deployment %s; copy %s; proxies %s",
		st.Phase, trafficOfStatus(st), w.name(st.CanaryRevision), w.name(st.StableRevision), st.Message,
		w.deployState(), w.copyState(), w.dpState())
	if len(st.FailedRevisions) > 0 {
		s += "; failed " + w.revNames(st.FailedRevisions)
	}
	return s
}

func (w *simWorld) deployState() string {
	d := w.deploy
	s := "on " + w.name(w.curHash)
	if d.Spec.Paused {
		s += " paused"
	}
	return fmt.Sprintf("%s, candidate %s, stable %s, pods %s", s, w.name(d.Annotations[v1alpha1.AnnotationCandidateRevision]),
		w.name(d.Annotations[v1alpha1.AnnotationStableRevision]), w.pods())
}

func (w *simWorld) pods() string {
	var parts []string
	for _, r := range w.rs {
		if r.replicas > 0 {
			parts = append(parts, fmt.Sprintf("%d×%s", r.replicas, w.name(r.hash)))
		}
	}
	return strings.Join(parts, "+")
}

func (w *simWorld) copyState() string {
	if w.copy == nil {
		return "none"
	}
	c := w.copy
	return fmt.Sprintf("%s (%d ready on %s)", w.name(c.obj.Annotations[v1alpha1.AnnotationRevision]), c.readyN, w.name(c.readyRev))
}

func (w *simWorld) dpState() string {
	dp := &w.dp
	s := "route " + dp.acked.String()
	if dp.stalled {
		s += ", stalled"
	}
	if w.traffic().Rejected != "" {
		s += ", rejecting " + trafficOfStatus(&w.status).String()
	}
	return s
}
