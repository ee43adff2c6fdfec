package rollout

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Step is the release state machine: from the effective spec, the status
// and what the reconciler observed, it returns the next status and the
// actions that make the world match it. It is a pure function: no clients,
// clocks or loggers. The reconciler persists the status before it acts, so
// a crash at any point resumes from status; traffic always follows the
// weight in status.
func Step(in Input) Output {
	s := &stepper{in: in, st: *in.Status.DeepCopy()}
	s.run()
	if len(s.needs.Hooks) > 0 || s.needs.Verdict {
		return Output{Status: in.Status, Needs: &s.needs}
	}
	s.trafficCondition()
	return Output{Status: s.st, Actions: s.actions, RequeueAfter: s.requeue}
}

type stepper struct {
	in      Input
	st      v1alpha1.CanaryStatus
	actions []Action
	needs   Needs
	requeue time.Duration
}

// Requeue delays used while waiting on things that do not send events.
const (
	pollTraffic = time.Second
	pollRollout = 2 * time.Second
)

func (s *stepper) run() {
	if s.in.Deleting {
		s.terminate()
		return
	}
	t := s.in.Obs.Target
	if !t.Found {
		s.st.Message = fmt.Sprintf("waiting for deployment %s to exist", s.target())
		return
	}
	act := s.manualAction()
	switch s.st.Phase {
	case "", v1alpha1.PhaseInitializing, v1alpha1.PhaseTerminating, v1alpha1.PhaseTerminated:
		s.initialize()
	case v1alpha1.PhaseInitialized, v1alpha1.PhaseSucceeded, v1alpha1.PhaseFailed:
		s.idle(act)
	case v1alpha1.PhaseWaiting:
		s.waiting(act)
	case v1alpha1.PhaseProgressing, v1alpha1.PhaseWaitingPromotion:
		s.progressing(act)
	case v1alpha1.PhasePromoting:
		s.promoting()
	case v1alpha1.PhaseFinalising:
		s.finalising()
	}
}

// target is the Flagger-style "name.namespace" used in messages.
func (s *stepper) target() string { return s.in.Name + "." + s.in.Namespace }

func (s *stepper) setPhase(p v1alpha1.CanaryPhase) {
	if s.st.Phase != p {
		s.st.Phase = p
		s.st.LastTransitionTime = metav1.NewTime(s.in.Now)
	}
}

// event records a Kubernetes event; action names what happened (distinct
// for events of one step, see Event.Action).
func (s *stepper) event(reason, action, format string, args ...any) {
	s.actions = append(s.actions, Event{Reason: reason, Action: action, Message: fmt.Sprintf(format, args...)})
}

func (s *stepper) warn(reason, action, format string, args ...any) {
	s.actions = append(s.actions, Event{Warning: true, Reason: reason, Action: action, Message: fmt.Sprintf(format, args...)})
}

func (s *stepper) after(d time.Duration) {
	if d <= 0 {
		d = 100 * time.Millisecond
	}
	if s.requeue == 0 || d < s.requeue {
		s.requeue = d
	}
}

// applied reports whether the data plane applied the traffic this step
// leaves in status. The observation is about the status the step started
// from: traffic the step itself changed is not applied yet, whatever the
// data plane said about the previous traffic.
func (s *stepper) applied() bool {
	was := s.in.Status
	return s.in.Obs.Traffic.Applied && s.st.CanaryWeight == was.CanaryWeight &&
		s.st.Mirroring == was.Mirroring && s.st.Matching == was.Matching
}

// trafficCondition says, in every phase, whether the data plane applied
// the traffic this step leaves in status.
func (s *stepper) trafficCondition() {
	tr := s.in.Obs.Traffic
	if s.st.Phase == "" || s.st.Phase == v1alpha1.PhaseTerminated {
		return
	}
	switch {
	case tr.Rejected != "":
		s.condition(v1alpha1.ConditionTrafficApplied, metav1.ConditionFalse, "Rejected", tr.Rejected)
	case s.applied():
		s.condition(v1alpha1.ConditionTrafficApplied, metav1.ConditionTrue, "Acknowledged", fmt.Sprintf("%d proxies applied weight %d", tr.Proxies, s.st.CanaryWeight))
	default:
		s.condition(v1alpha1.ConditionTrafficApplied, metav1.ConditionFalse, "Pending", fmt.Sprintf("waiting for proxies to apply weight %d", s.st.CanaryWeight))
	}
}

func (s *stepper) now() *metav1.Time {
	t := metav1.NewTime(s.in.Now)
	return &t
}

func (s *stepper) condition(typ string, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&s.st.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: s.st.ObservedGeneration, LastTransitionTime: metav1.NewTime(s.in.Now),
	})
}

// manualAction returns the verb of a serin.dev/action annotation not
// handled yet, and records it as handled.
func (s *stepper) manualAction() string {
	a := s.in.Action
	if a == "" || a == s.st.LastHandledAction {
		return ""
	}
	s.st.LastHandledAction = a
	verb, _, _ := strings.Cut(a, "/")
	return verb
}

// candidate is the revision held for release: the Deployment's current
// template, recorded as candidate by the webhook, not the stable one.
func (s *stepper) candidate() string {
	t := s.in.Obs.Target
	if t.Candidate != "" && t.Candidate == t.TemplateHash && t.Candidate != s.st.StableRevision {
		return t.Candidate
	}
	return ""
}

func (s *stepper) failed(rev string) bool { return slices.Contains(s.st.FailedRevisions, rev) }

// hooks answers whether every hook of type typ passed, asking for the
// results first when they are missing (ok false: stop this step).
func (s *stepper) hooks(typ v1alpha1.HookType) (passed bool, msg string, ok bool) {
	if !s.hasHooks(typ) {
		return true, "", true
	}
	r, found := s.in.Obs.Hooks[typ]
	if !found {
		s.needs.Hooks = append(s.needs.Hooks, typ)
		return false, "", false
	}
	return r.Passed, r.Message, true
}

func (s *stepper) hasHooks(typ v1alpha1.HookType) bool {
	if s.in.Spec.Analysis == nil {
		return false
	}
	for _, h := range s.in.Spec.Analysis.Webhooks {
		if h.Type == typ {
			return true
		}
	}
	return false
}

// --- phases ---

func (s *stepper) initialize() {
	t := s.in.Obs.Target
	if s.st.Phase != v1alpha1.PhaseInitializing {
		s.setPhase(v1alpha1.PhaseInitializing)
		s.st.CanaryWeight, s.st.Mirroring, s.st.Matching = 0, false, false
		s.st.CanaryRevision = ""
		s.st.StableRevision = t.TemplateHash
		if t.Stable != "" && t.Candidate != "" && t.Candidate != t.Stable {
			// Held before serin saw it: the stable pods run the recorded revision.
			s.st.StableRevision = t.Stable
		}
	}
	s.st.Message = "waiting for the stable pods and the data plane"
	if !t.Available || !s.applied() {
		s.after(pollTraffic)
		return
	}
	s.setPhase(v1alpha1.PhaseInitialized)
	s.st.Message = ""
	s.condition(v1alpha1.ConditionPromoted, metav1.ConditionTrue, "Initialized", "Deployment initialization completed.")
	s.event("Synced", "Initialize", "Initialization done! %s", s.target())
	s.idle("")
}

// idle runs between releases: it cleans up after the last one, repairs
// what slipped past the webhook, and starts the next release.
func (s *stepper) idle(act string) {
	t := s.in.Obs.Target
	if act == v1alpha1.ActionRetry && s.st.Phase == v1alpha1.PhaseFailed {
		rev := t.Candidate
		s.st.FailedRevisions = slices.DeleteFunc(s.st.FailedRevisions, func(r string) bool { return r == rev })
		s.event("Synced", "Retry", "Retrying the release of %s revision %s", s.target(), rev)
	}
	if s.st.CanaryWeight != 0 || s.st.Mirroring || s.st.Matching {
		s.st.CanaryWeight, s.st.Mirroring, s.st.Matching = 0, false, false
	}
	if s.in.Obs.Copy.Exists {
		if s.applied() {
			s.actions = append(s.actions, DeleteCopy{})
		} else {
			s.after(pollTraffic)
		}
	}

	switch {
	case t.TemplateHash == s.st.StableRevision:
		// Back on the stable template: a hold the webhook ended is released.
		if t.Paused && t.Candidate != "" && t.Candidate == t.Stable {
			s.actions = append(s.actions, UnpauseTarget{})
		}
		return
	case t.Candidate != t.TemplateHash:
		// A new template without a hold: the webhook was down or bypassed.
		s.warn("ReleaseBypassedAdmission", "Hold", "New revision of %s was not held at admission (release bypassed admission); holding it now", s.target())
		s.actions = append(s.actions, HoldTarget{Candidate: t.TemplateHash, Stable: s.st.StableRevision})
		return
	}
	cand := s.candidate()
	if cand == "" {
		return
	}
	if s.failed(cand) {
		if s.st.Phase != v1alpha1.PhaseFailed {
			s.setPhase(v1alpha1.PhaseFailed)
			s.st.Message = fmt.Sprintf("revision %s failed before; apply a new revision or run serin retry %s", cand, s.in.Name)
		}
		return
	}
	s.startRelease(cand, act)
}

func (s *stepper) startRelease(cand, act string) {
	if act != v1alpha1.ActionPromote {
		if open := s.gate(v1alpha1.HookConfirmRollout, v1alpha1.PhaseWaiting, "approval"); !open {
			if s.st.Phase == v1alpha1.PhaseWaiting {
				s.st.CanaryRevision = cand
			}
			return
		}
	}
	s.setPhase(v1alpha1.PhaseProgressing)
	s.st.CanaryRevision = cand
	s.st.CanaryWeight, s.st.Mirroring, s.st.Matching = 0, false, false
	s.st.FailedChecks, s.st.Iterations = 0, 0
	s.st.ReleaseStartTime = s.now()
	s.st.AnalysisStartTime, s.st.StepStartTime, s.st.LastCheckTime, s.st.NoDataSince = nil, nil, nil, nil
	s.st.LastVerdict = ""
	s.st.Message = "waiting for the canary pods"
	s.condition(v1alpha1.ConditionPromoted, metav1.ConditionFalse, "Progressing", "New revision detected, progressing canary analysis.")
	s.event("Synced", "Start", "New revision detected! Scaling up %s", s.target())
	s.actions = append(s.actions, EnsureCopy{Revision: cand, Replicas: s.copyReplicas()})
	if act == v1alpha1.ActionPromote {
		s.promote("promoted by user")
		return
	}
	s.after(pollTraffic)
}

// waiting is the confirm-rollout gate.
func (s *stepper) waiting(act string) {
	cand := s.candidate()
	switch {
	case cand == "" || s.failed(cand):
		s.setPhase(v1alpha1.PhaseInitialized)
		s.st.CanaryRevision, s.st.Message = "", ""
		s.idle(act)
		return
	case act == v1alpha1.ActionAbort:
		s.setPhase(v1alpha1.PhaseFailed)
		s.st.FailedRevisions = appendUnique(s.st.FailedRevisions, cand)
		s.st.Message = "aborted by user before the release started"
		s.warn("Synced", "Abort", "Canary %s aborted by user", s.target())
		return
	}
	s.startRelease(cand, act)
}

// progressing runs the analysis steps (phases Progressing and
// WaitingPromotion).
func (s *stepper) progressing(act string) {
	t := s.in.Obs.Target
	spec := s.in.Spec
	cand := s.candidate()
	switch {
	case t.TemplateHash == s.st.StableRevision:
		s.setPhase(v1alpha1.PhaseInitialized)
		s.st.CanaryWeight, s.st.Mirroring, s.st.Matching = 0, false, false
		s.st.Message = fmt.Sprintf("release of revision %s cancelled: the Deployment is back on the stable revision", s.st.CanaryRevision)
		s.event("Synced", "Cancel", "Release of %s cancelled: the template is back on the stable revision", s.target())
		s.st.CanaryRevision = ""
		s.idle("")
		return
	case cand != "" && s.failed(cand):
		s.rollback(fmt.Sprintf("Rolling back %s: revision %s failed before", s.target(), cand))
		return
	case cand != "" && cand != s.st.CanaryRevision:
		s.event("Synced", "Restart", "New revision detected! Restarting analysis for %s", s.target())
		s.startRelease(cand, "")
		return
	case cand == "":
		// A template change the webhook did not hold mid-release: hold it.
		if t.Candidate != t.TemplateHash {
			s.warn("ReleaseBypassedAdmission", "Hold", "New revision of %s was not held at admission (release bypassed admission); holding it now", s.target())
			s.actions = append(s.actions, HoldTarget{Candidate: t.TemplateHash, Stable: s.st.StableRevision})
		}
		return
	}
	s.actions = append(s.actions, EnsureCopy{Revision: cand, Replicas: s.copyReplicas()})

	switch act {
	case v1alpha1.ActionAbort:
		s.rollback(fmt.Sprintf("Rolling back %s: aborted by user", s.target()))
		return
	case v1alpha1.ActionPromote:
		s.promote("promoted by user")
		return
	}
	if spec.Suspend || s.in.Paused {
		s.st.Message = "release paused"
		return
	}
	deadline := spec.ProgressDeadline()
	if !s.in.Obs.Copy.Ready || s.in.Obs.Copy.Revision != cand {
		// The deadline runs from the release's last progress (its start, a
		// weight step or a check), not from its start: a copy scaling up
		// for the next weight is briefly not ready in any long release.
		since := s.st.ReleaseStartTime.Time
		if s.st.LastCheckTime != nil && s.st.LastCheckTime.After(since) {
			since = s.st.LastCheckTime.Time
		}
		if s.in.Now.Sub(since) > deadline {
			s.rollback(fmt.Sprintf("Rolling back %s: canary deployment %s-canary.%s not ready: progress deadline exceeded", s.target(), s.in.Name, s.in.Namespace))
			return
		}
		s.st.Message = fmt.Sprintf("waiting for deployment %s-canary.%s to be ready", s.in.Name, s.in.Namespace)
		s.after(pollRollout)
		return
	}
	if spec.SkipAnalysis {
		s.promote("analysis skipped")
		return
	}
	if !s.trafficInForce(deadline) {
		return
	}
	s.check(act)
}

// trafficInForce reports whether the data plane applied the traffic in
// status, stamping StepStartTime when it first did. Once a weight was in
// force it stays so (a proxy that connects later gets it on its first
// answer); a rejection halts the release, and traffic never applied within
// the progress deadline rolls it back.
func (s *stepper) trafficInForce(deadline time.Duration) bool {
	tr := s.in.Obs.Traffic
	if tr.Rejected != "" {
		if s.st.Message != msgRejected {
			s.warn("TrafficRejected", "Halt", "Halt %s advancement: the data plane rejected the configuration: %s", s.target(), tr.Rejected)
		}
		s.st.Message = msgRejected
		s.after(pollTraffic)
		return false
	}
	applied := s.applied()
	if applied || s.st.StepStartTime != nil {
		if s.st.StepStartTime == nil {
			s.st.StepStartTime = s.now()
		}
		return true
	}
	since := s.st.ReleaseStartTime.Time
	if s.st.LastCheckTime != nil {
		since = s.st.LastCheckTime.Time
	}
	s.st.Message = fmt.Sprintf("waiting for the data plane to apply weight %d", s.st.CanaryWeight)
	if s.in.Now.Sub(since) > deadline {
		s.rollback(fmt.Sprintf("Rolling back %s: the data plane did not apply weight %d within the progress deadline", s.target(), s.st.CanaryWeight))
		return false
	}
	s.after(pollTraffic)
	return false
}

const msgRejected = "data plane rejected the configuration"

// check runs one analysis check when it is due.
func (s *stepper) check(act string) {
	spec := s.in.Spec
	interval := spec.IntervalDuration()
	if s.st.AnalysisStartTime == nil {
		if s.st.LastCheckTime == nil || !s.in.Now.Before(s.st.LastCheckTime.Add(interval)) {
			s.firstCheck()
		} else {
			s.after(s.st.LastCheckTime.Add(interval).Sub(s.in.Now))
		}
		return
	}
	due := s.st.LastCheckTime.Time
	if s.st.StepStartTime.After(due) {
		due = s.st.StepStartTime.Time
	}
	due = due.Add(interval)
	if s.in.Now.Before(due) {
		s.st.Message = ""
		s.fastCheck(due)
		return
	}

	// Ask for everything a check needs at once.
	needVerdict := s.wantsVerdict() && s.in.Obs.Verdict == nil
	if needVerdict {
		s.needs.Verdict = true
	}
	rollbackAsked, rbMsg, ok1 := s.hooks(v1alpha1.HookRollback)
	rolloutPassed, roMsg, ok2 := s.hooks(v1alpha1.HookRollout)
	if needVerdict || !ok1 || !ok2 {
		return
	}
	s.st.LastCheckTime = s.now()
	s.after(interval)
	if s.hasHooks(v1alpha1.HookRollback) && rollbackAsked {
		s.st.LastVerdict = "Rollback: rollback hook " + rbMsg
		s.rollback(fmt.Sprintf("Rolling back %s: the rollback hook asked for it (%s)", s.target(), rbMsg))
		return
	}
	if !rolloutPassed {
		// The hooks gate the check: say so in place of the analysis verdict.
		s.st.LastVerdict = "Hold: rollout hook failed " + roMsg
		s.failCheck(fmt.Sprintf("Halt %s advancement: rollout hook failed %s", s.target(), roMsg))
		return
	}
	v := s.in.Obs.Verdict
	if v == nil {
		v = &Verdict{Decision: Promote}
	}
	if v.Summary != "" {
		s.st.LastVerdict = string(v.Decision) + ": " + v.Summary
	} else {
		s.st.LastVerdict = string(v.Decision)
	}
	switch v.Decision {
	case Rollback:
		s.rollback(v.Message)
		return
	case NoData:
		if s.st.NoDataSince == nil {
			s.st.NoDataSince = s.st.StepStartTime.DeepCopy()
		}
		quiet := s.in.Now.Sub(s.st.NoDataSince.Time)
		why := strings.TrimPrefix(v.Message, "Halt "+s.target()+" advancement ")
		if why == "" {
			why = "no traffic reached the canary"
		}
		if quiet >= spec.ProgressDeadline() {
			s.rollback(fmt.Sprintf("Rolling back %s: no data to judge for %s, past the progress deadline %s: %s", s.target(), quiet.Round(time.Second), spec.ProgressDeadline(), why))
			return
		}
		s.st.Message = "no data to judge yet: " + why
		s.event("Synced", "Halt", "Halt %s advancement: no data to judge yet (for %s); waiting: %s", s.target(), quiet.Round(time.Second), why)
		return
	case Hold:
		if v.FailedCheck {
			s.failCheck(v.Message)
		} else {
			s.st.Message = v.Message
		}
		return
	}
	s.st.NoDataSince = nil
	s.st.Message = ""
	if s.in.Spec.Strategy() == v1alpha1.StrategyCanary || s.st.Iterations < s.in.Spec.Analysis.Iterations {
		// A blue/green or A/B release held at its promotion gate has done
		// all its iterations; further passed checks do not add any.
		s.st.Iterations++
	}
	if v.Early {
		s.gatePromotion(act, "analysis proved the canary early: "+v.Message)
		return
	}
	s.advance(act)
}

// fastCheckEvery is how often the comparative judge looks between checks:
// it may only roll back early, never count a failed check or advance.
const fastCheckEvery = 5 * time.Second

// fastCheck lets the comparative judge roll a clearly worse canary back
// before the next interval ends.
func (s *stepper) fastCheck(due time.Time) {
	wait := due.Sub(s.in.Now)
	if s.in.Spec.Judge == nil || s.in.Spec.Judge.Kind != v1alpha1.JudgeComparative || !s.wantsVerdict() {
		s.after(wait)
		return
	}
	last := s.st.StepStartTime.Time
	if s.st.LastFastCheckTime != nil && s.st.LastFastCheckTime.After(last) {
		last = s.st.LastFastCheckTime.Time
	}
	if next := last.Add(fastCheckEvery); s.in.Now.Before(next) {
		s.after(min(wait, next.Sub(s.in.Now)))
		return
	}
	if s.in.Obs.Verdict == nil {
		s.needs.Verdict = true
		return
	}
	s.st.LastFastCheckTime = s.now()
	if v := s.in.Obs.Verdict; v.Decision == Rollback {
		s.st.LastVerdict = string(v.Decision) + ": " + v.Summary
		s.rollback(v.Message)
		return
	}
	s.after(min(wait, fastCheckEvery))
}

func (s *stepper) wantsVerdict() bool {
	a := s.in.Spec.Analysis
	return (a != nil && len(a.Metrics) > 0) || (s.in.Spec.LoadReports != nil && s.in.Spec.LoadReports.Enabled)
}

// firstCheck runs the pre-rollout hooks and then lets traffic in.
func (s *stepper) firstCheck() {
	passed, msg, ok := s.hooks(v1alpha1.HookPreRollout)
	if !ok {
		return
	}
	s.st.LastCheckTime = s.now()
	if !passed {
		s.st.LastVerdict = "Hold: pre-rollout check failed " + msg
		s.failCheck(fmt.Sprintf("Halt %s advancement pre-rollout check failed %s", s.target(), msg))
		return
	}
	if s.hasHooks(v1alpha1.HookPreRollout) {
		s.event("Synced", "PreRollout", "Pre-rollout checks passed for %s", s.target())
	}
	s.st.AnalysisStartTime = s.now()
	s.event("Synced", "Analyze", "Starting canary analysis for %s", s.target())
	a := s.in.Spec.Analysis
	s.after(s.in.Spec.IntervalDuration())
	switch s.in.Spec.Strategy() {
	case v1alpha1.StrategyCanary:
		if a.Mirror {
			s.setTraffic(0, true, false)
			s.event("Synced", "Mirror", "Advance %s canary mirroring %d%%", s.target(), a.MirrorWeight)
			return
		}
		s.stepWeight("")
	case v1alpha1.StrategyBlueGreen:
		if a.Mirror {
			s.setTraffic(0, true, false)
			s.event("Synced", "Mirror", "Advance %s canary mirroring %d%%", s.target(), a.MirrorWeight)
		}
	case v1alpha1.StrategyABTesting:
		s.setTraffic(0, false, true)
		s.event("Synced", "Match", "Advance %s canary: routing matching requests to the canary", s.target())
	}
}

// advance moves to the next step after a passed check.
func (s *stepper) advance(act string) {
	spec := s.in.Spec
	if spec.Strategy() != v1alpha1.StrategyCanary {
		s.event("Synced", "Advance", "Advance %s canary iteration %d/%d", s.target(), s.st.Iterations, spec.Analysis.Iterations)
		if s.st.Iterations >= spec.Analysis.Iterations {
			s.gatePromotion(act, "")
		}
		return
	}
	s.stepWeight(act)
}

// stepWeight shifts traffic to the next weight, or promotes after the last.
func (s *stepper) stepWeight(act string) {
	next, ok := nextWeight(s.in.Spec.Weights(), s.st.CanaryWeight, s.st.Mirroring)
	if !ok {
		s.gatePromotion(act, "")
		return
	}
	passed, msg, asked := s.hooks(v1alpha1.HookConfirmTrafficIncrease)
	if !asked {
		return
	}
	if !passed {
		s.st.Message = "waiting for confirm-traffic-increase approval"
		s.event("Synced", "Halt", "Halt %s advancement waiting for traffic increase approval %s", s.target(), msg)
		return
	}
	s.setTraffic(next, false, false)
	s.event("Synced", "Advance", "Advance %s canary weight %d", s.target(), next)
}

// nextWeight is the weight after cur; ok is false at the last step. From
// the mirroring pre-stage the next weight is the first step.
func nextWeight(weights []int32, cur int32, mirroring bool) (int32, bool) {
	for _, w := range weights {
		if w > cur || (mirroring && w >= cur) {
			return w, true
		}
	}
	return 0, false
}

func (s *stepper) setTraffic(weight int32, mirror, match bool) {
	if s.st.CanaryWeight == weight && s.st.Mirroring == mirror && s.st.Matching == match {
		return
	}
	s.st.CanaryWeight, s.st.Mirroring, s.st.Matching = weight, mirror, match
	s.st.StepStartTime = nil
	s.st.LastCheckTime = s.now()
	s.after(pollTraffic)
}

func (s *stepper) failCheck(msg string) {
	s.st.FailedChecks++
	s.st.Message = msg
	threshold := s.in.Spec.Analysis.Threshold
	if s.st.FailedChecks >= threshold {
		s.warn("Synced", "Halt", "%s", msg)
		s.rollback(fmt.Sprintf("Rolling back %s failed checks threshold reached %d", s.target(), s.st.FailedChecks))
		return
	}
	s.warn("Synced", "Halt", "%s", msg)
	s.after(s.in.Spec.IntervalDuration())
}

// gate asks the hooks of a gate type. Closed, the release waits in phase
// waiting (saying so once) and asks again next interval; false is also the
// answer while the hooks' results are still being fetched.
func (s *stepper) gate(typ v1alpha1.HookType, waiting v1alpha1.CanaryPhase, what string) bool {
	passed, msg, ok := s.hooks(typ)
	if !ok {
		return false
	}
	if passed {
		return true
	}
	if s.st.Phase != waiting {
		s.event("Synced", "Halt", "Halt %s advancement waiting for %s %s", s.target(), what, msg)
	}
	s.setPhase(waiting)
	s.st.Message = "waiting for " + string(typ) + " approval"
	s.after(s.in.Spec.IntervalDuration())
	return false
}

// gatePromotion asks the confirm-promotion hooks, then promotes.
func (s *stepper) gatePromotion(act, why string) {
	if act != v1alpha1.ActionPromote && !s.gate(v1alpha1.HookConfirmPromotion, v1alpha1.PhaseWaitingPromotion, "promotion approval") {
		return
	}
	if why == "" {
		why = "analysis passed"
	}
	s.promote(why)
}

func (s *stepper) promote(why string) {
	s.setPhase(v1alpha1.PhasePromoting)
	s.st.Message = why
	s.st.LastCheckTime = s.now()
	s.event("Synced", "Promote", "Copying %s template spec to %s (%s)", s.target(), s.target(), why)
	s.promoting()
}

// promoting finishes progressive promotion, then rolls the proven template
// out to the user's Deployment and waits for it.
func (s *stepper) promoting() {
	spec := s.in.Spec
	t := s.in.Obs.Target
	cand := s.st.CanaryRevision
	if step := spec.Analysis.StepWeightPromotion; step > 0 && spec.Strategy() == v1alpha1.StrategyCanary {
		// Progressive promotion: move the rest of the traffic to the canary
		// in steps, then roll the Deployment while the canary serves.
		if !s.trafficInForce(spec.ProgressDeadline()) {
			return
		}
		if s.st.CanaryWeight < 100 {
			due := s.st.LastCheckTime.Time
			if s.st.StepStartTime.After(due) {
				due = s.st.StepStartTime.Time
			}
			if due = due.Add(spec.IntervalDuration()); s.in.Now.Before(due) {
				s.after(due.Sub(s.in.Now))
				return
			}
			next := min(100, s.st.CanaryWeight+step)
			s.setTraffic(next, false, false)
			s.event("Synced", "Advance", "Advance %s canary weight %d", s.target(), next)
			return
		}
	}
	s.actions = append(s.actions, EnsureCopy{Revision: cand, Replicas: s.copyReplicas()})
	if t.Paused || t.Stable != cand {
		s.actions = append(s.actions, PromoteTarget{Revision: cand})
		s.st.Message = fmt.Sprintf("rolling revision %s out to deployment %s", cand, s.target())
		s.after(pollRollout)
		return
	}
	if !t.RolledOut || t.TemplateHash != cand {
		s.st.Message = fmt.Sprintf("waiting for deployment %s to roll out revision %s", s.target(), cand)
		s.after(pollRollout)
		return
	}
	s.setPhase(v1alpha1.PhaseFinalising)
	s.setTraffic(0, false, false)
	s.st.Message = ""
	s.event("Synced", "Finalize", "Routing all traffic to primary %s", s.target())
	s.finalising()
}

func (s *stepper) finalising() {
	if s.st.CanaryWeight != 0 {
		s.setTraffic(0, false, false)
	}
	if !s.applied() {
		s.st.Message = "waiting for the data plane to route all traffic to stable"
		s.after(pollTraffic)
		return
	}
	s.actions = append(s.actions, DeleteCopy{})
	s.st.StableRevision = s.st.CanaryRevision
	s.st.CanaryRevision = ""
	s.st.StepStartTime, s.st.NoDataSince = nil, nil
	s.st.Message = ""
	s.setPhase(v1alpha1.PhaseSucceeded)
	s.condition(v1alpha1.ConditionPromoted, metav1.ConditionTrue, "Succeeded", "Canary analysis completed successfully, promotion finished.")
	s.event("Synced", "Succeed", "Promotion completed! Scaling down %s", s.target())
	s.actions = append(s.actions, RunHooks{Type: v1alpha1.HookPostRollout}, Finished{Succeeded: true, Duration: s.elapsed()})
}

func (s *stepper) elapsed() time.Duration {
	if s.st.ReleaseStartTime == nil {
		return 0
	}
	return s.in.Now.Sub(s.st.ReleaseStartTime.Time)
}

// rollback routes all traffic to stable and marks the release failed; the
// copy is deleted once the data plane applied weight 0 (see idle).
func (s *stepper) rollback(reason string) {
	cand := s.st.CanaryRevision
	s.setTraffic(0, false, false)
	s.setPhase(v1alpha1.PhaseFailed)
	s.st.FailedRevisions = appendUnique(s.st.FailedRevisions, cand)
	s.st.Message = reason
	s.condition(v1alpha1.ConditionPromoted, metav1.ConditionFalse, "Failed", reason)
	s.warn("Synced", "Rollback", "%s", reason)
	s.warn("Synced", "ScaleDown", "Canary failed! Scaling down %s", s.target())
	s.actions = append(s.actions, RunHooks{Type: v1alpha1.HookPostRollout}, Finished{Succeeded: false, Duration: s.elapsed()})
}

// terminate gives everything back on deletion or opt-out.
func (s *stepper) terminate() {
	if s.st.Phase != v1alpha1.PhaseTerminating && s.st.Phase != v1alpha1.PhaseTerminated {
		s.event("Synced", "Terminate", "Terminating %s: routing all traffic to stable", s.target())
	}
	s.setPhase(v1alpha1.PhaseTerminating)
	s.setTraffic(0, false, false)
	if s.in.Obs.Copy.Exists {
		if !s.applied() {
			s.after(pollTraffic)
			return
		}
		s.actions = append(s.actions, DeleteCopy{})
		s.after(pollTraffic)
		return
	}
	if s.in.Revert && s.in.Obs.Target.Found {
		s.actions = append(s.actions, ReleaseTarget{})
	}
	s.actions = append(s.actions, Finalized{})
	s.setPhase(v1alpha1.PhaseTerminated)
}

// copyReplicas is how many pods the canary copy runs: with the Proportional
// policy, enough for the larger of the current and the next weight.
func (s *stepper) copyReplicas() int32 {
	spec := s.in.Spec
	p := spec.CanaryReplicas
	stable := s.in.Obs.Target.Replicas
	switch p.Policy {
	case v1alpha1.ReplicasFixed:
		return p.Count
	case v1alpha1.ReplicasMatch:
		return max(1, stable)
	}
	w := s.st.CanaryWeight
	if next, ok := nextWeight(spec.Weights(), w, s.st.Mirroring); ok && spec.Strategy() == v1alpha1.StrategyCanary {
		w = max(w, next)
	}
	if spec.Analysis.Mirror {
		w = max(w, spec.Analysis.MirrorWeight)
	}
	n := int32(math.Ceil(float64(stable) * float64(w) / 100))
	return max(n, p.Min, 1)
}

func appendUnique(list []string, v string) []string {
	if v == "" || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}
