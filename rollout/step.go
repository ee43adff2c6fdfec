package rollout

import (
	"fmt"
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
	if !in.Deleting && in.Obs.Target.Found {
		// The Services hooks address (<svc>-canary, <svc>-primary) exist
		// from the first step on and follow the spec on every step. Last,
		// so a failure there never holds the release's own actions back.
		s.actions = append(s.actions, EnsureServices{})
	}
	s.trafficCondition()
	s.trackedConfig()
	return Output{Status: s.st, Actions: s.actions, RequeueAfter: s.requeue}
}

type stepper struct {
	in      Input
	st      v1alpha1.CanaryStatus
	actions []Action
	needs   Needs
	requeue time.Duration
	// act is the manual action this step handles ("" for none); actUsed
	// is set by the phase that acts on it.
	act     string
	actUsed bool
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
	s.act = s.manualAction()
	defer s.refuseUnusedAction()
	if !s.in.Obs.Target.Found {
		s.targetGone()
		return
	}
	act := s.act
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
		s.promoting(act)
	case v1alpha1.PhaseFinalising:
		s.finalising()
	}
}

// targetGone handles a Canary whose Deployment does not exist (yet, or any
// more): no traffic goes to a copy nobody releases, and the copy goes once
// the data plane routes around it (or the progress deadline passed).
func (s *stepper) targetGone() {
	s.st.Message = fmt.Sprintf("waiting for deployment %s to exist", s.target())
	if s.st.CanaryWeight != 0 || s.st.Mirroring || s.st.Matching {
		s.setTraffic(0, false, false)
	}
	if s.in.Obs.Copy.Exists {
		s.deleteCopyWhenRouted()
	}
}

// deleteCopyWhenRouted deletes the canary copy once the data plane applied
// the traffic in status (weight 0), or when it has not within the progress
// deadline since the phase began: a proxy that never answers must not keep
// a copy running forever.
func (s *stepper) deleteCopyWhenRouted() {
	if s.applied() {
		s.actions = append(s.actions, DeleteCopy{})
		return
	}
	if s.in.Now.Sub(s.st.LastTransitionTime.Time) > s.in.Spec.ProgressDeadline() {
		s.warn("Synced", "ForceScaleDown", "Proxies did not confirm weight 0 for %s within the progress deadline; deleting the canary copy anyway", s.target())
		s.actions = append(s.actions, DeleteCopy{})
		return
	}
	s.after(pollTraffic)
}

// uses reports whether the manual action is verb, and marks it acted on.
func (s *stepper) uses(verb string) bool {
	if s.act != verb {
		return false
	}
	if !s.actUsed {
		s.actUsed = true
		s.condition(v1alpha1.ConditionManualAction, metav1.ConditionTrue, "Acted", fmt.Sprintf("%s acted on in phase %s", s.in.Action, s.in.Status.Phase))
	}
	return true
}

// refuseUnusedAction says, in status and an event, why a manual action the
// phase did not act on was refused: an action is never dropped silently.
func (s *stepper) refuseUnusedAction() {
	if s.act == "" || s.actUsed || len(s.needs.Hooks) > 0 || s.needs.Verdict {
		return
	}
	phase := s.in.Status.Phase
	why := fmt.Sprintf("nothing to %s in phase %s", s.act, phase)
	switch {
	case !s.in.Obs.Target.Found:
		why = fmt.Sprintf("deployment %s does not exist", s.target())
	case s.act == v1alpha1.ActionRetry && phase == v1alpha1.PhaseFailed:
		why = "nothing to retry: the Deployment's template is the stable revision"
	case s.act == v1alpha1.ActionRetry:
		why = fmt.Sprintf("only a failed release can be retried; the release is %s", phase)
	case phase == v1alpha1.PhasePromoting && s.act == v1alpha1.ActionPromote:
		why = "the release is already promoting"
	case phase == v1alpha1.PhaseFinalising:
		why = "the release is finalising: traffic is returning to the promoted stable pods"
	case phase == v1alpha1.PhaseInitialized || phase == v1alpha1.PhaseSucceeded || phase == v1alpha1.PhaseFailed:
		why = fmt.Sprintf("no release in progress (phase %s)", phase)
	}
	s.condition(v1alpha1.ConditionManualAction, metav1.ConditionFalse, "Refused", fmt.Sprintf("%s refused: %s", s.in.Action, why))
	s.warn("Synced", "Refuse", "Manual %s of %s refused: %s", s.act, s.target(), why)
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
	return s.in.Obs.Traffic.Applied && s.in.Obs.Traffic.Proxies >= s.minProxies() &&
		s.st.CanaryWeight == was.CanaryWeight && s.st.Mirroring == was.Mirroring && s.st.Matching == was.Matching
}

func (s *stepper) minProxies() int {
	if p := s.in.Spec.MinProxies; p != nil {
		return int(*p)
	}
	return 0
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
	case tr.Proxies < s.minProxies():
		s.noProxies(metav1.ConditionFalse, fmt.Sprintf("%d of the %d proxies this release needs are subscribed; waiting to apply weight %d", tr.Proxies, s.minProxies(), s.st.CanaryWeight))
	case s.applied() && tr.Proxies == 0:
		s.noProxies(metav1.ConditionTrue, fmt.Sprintf("no proxy is subscribed to this release: weight %d applies to no traffic", s.st.CanaryWeight))
	case s.applied():
		s.condition(v1alpha1.ConditionTrafficApplied, metav1.ConditionTrue, "Acknowledged", fmt.Sprintf("%d proxies applied weight %d", tr.Proxies, s.st.CanaryWeight))
	default:
		s.condition(v1alpha1.ConditionTrafficApplied, metav1.ConditionFalse, "Pending", fmt.Sprintf("waiting for proxies to apply weight %d", s.st.CanaryWeight))
	}
}

// noProxies sets TrafficApplied with reason NoProxies, with one event when
// the condition becomes so.
func (s *stepper) noProxies(status metav1.ConditionStatus, msg string) {
	was := apimeta.FindStatusCondition(s.in.Status.Conditions, v1alpha1.ConditionTrafficApplied)
	if was == nil || was.Reason != "NoProxies" {
		s.warn("NoProxies", "Route", "No proxy applies the traffic of %s: %s", s.target(), msg)
	}
	s.condition(v1alpha1.ConditionTrafficApplied, status, "NoProxies", msg)
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

// copyReady tells whether the canary copy runs enough ready pods of its
// current template to take traffic: all of them, or the share
// analysis.canaryReadyThreshold asks for.
func (s *stepper) copyReady() bool {
	c := s.in.Obs.Copy
	pct, _ := s.in.Spec.ReadyThresholds()
	if pct >= 100 {
		return c.Ready
	}
	return c.RolledOut && c.ReadyReplicas >= v1alpha1.ReadyPodsNeeded(c.Desired, pct)
}

// stableReady tells whether the stable pods meet
// analysis.primaryReadyThreshold, as a release needs before its traffic
// moves or its checks run; otherwise it holds the release, with a message,
// and looks again.
func (s *stepper) stableReady() bool {
	t := s.in.Obs.Target
	_, pct := s.in.Spec.ReadyThresholds()
	need := v1alpha1.ReadyPodsNeeded(t.Replicas, pct)
	if t.ReadyReplicas >= need {
		return true
	}
	s.st.Message = fmt.Sprintf("waiting for deployment %s: %d of %d stable pods ready, %d needed (primaryReadyThreshold %d%%)",
		s.target(), t.ReadyReplicas, t.Replicas, need, pct)
	s.after(pollRollout)
	return false
}

// waitingForCopy is the message of a release waiting for its copy's pods.
func (s *stepper) waitingForCopy() string {
	return fmt.Sprintf("waiting for deployment %s.%s to be ready", v1alpha1.CopyName(s.in.Name), s.in.Namespace)
}

// nextCheckAt is when the next check or step is due: an interval after
// the last check or after the current weight was applied, whichever is
// later.
func (s *stepper) nextCheckAt() time.Time {
	var due time.Time
	if s.st.LastCheckTime != nil {
		due = s.st.LastCheckTime.Time
	}
	if s.st.StepStartTime != nil && s.st.StepStartTime.After(due) {
		due = s.st.StepStartTime.Time
	}
	return due.Add(s.in.Spec.IntervalDuration())
}

// --- phases ---

func (s *stepper) initialize() {
	t := s.in.Obs.Target
	if s.st.Phase != v1alpha1.PhaseInitializing {
		s.setPhase(v1alpha1.PhaseInitializing)
		s.st.CanaryWeight, s.st.Mirroring, s.st.Matching = 0, false, false
		s.st.CanaryRevision = ""
		s.st.StableRevision, s.st.StableConfig = t.TemplateHash, t.Config
		if t.Stable != "" && t.Candidate != "" && t.Candidate != t.Stable {
			// Held before serin saw it: the stable pods run the recorded revision.
			s.st.StableRevision, s.st.StableConfig = t.Stable, ""
		}
	}
	s.recordAdoption()
	if s.adoptConfig() {
		s.st.Message = "moving the pods onto snapshots of their ConfigMaps and Secrets"
		return
	}
	s.st.Message = "waiting for the stable pods and the data plane"
	if tr := s.in.Obs.Traffic; tr.Rejected != "" {
		s.st.Message = msgRejected + ": " + tr.Rejected
	}
	if !t.Available || !s.applied() && s.in.Now.Sub(s.st.LastTransitionTime.Time) <= s.in.Spec.ProgressDeadline() {
		s.after(pollTraffic)
		return
	}
	if !s.applied() {
		s.warn("Synced", "Initialize", "Proxies did not confirm weight 0 for %s within the progress deadline; initializing anyway", s.target())
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
	if s.st.Phase == v1alpha1.PhaseFailed && t.Candidate != "" && t.Candidate == t.TemplateHash &&
		t.Candidate != s.st.StableRevision && s.uses(v1alpha1.ActionRetry) {
		rev := t.Candidate
		s.st.FailedRevisions = slices.DeleteFunc(s.st.FailedRevisions, func(r string) bool { return r == rev })
		s.event("Synced", "Retry", "Retrying the release of %s revision %s", s.target(), rev)
	}
	if s.st.CanaryWeight != 0 || s.st.Mirroring || s.st.Matching {
		s.st.CanaryWeight, s.st.Mirroring, s.st.Matching = 0, false, false
	}
	if s.in.Obs.Copy.Exists {
		s.deleteCopyWhenRouted()
	}
	s.recordAdoption()

	switch {
	case t.TemplateHash == s.st.StableRevision:
		// Back on the stable template: a hold the webhook ended is released;
		// one it keeps because its stable annotation names a revision that
		// was rolled back mid-promotion is ended by recording the template
		// as stable again.
		switch {
		case t.Paused && t.Candidate != "" && t.Candidate == t.Stable:
			s.actions = append(s.actions, UnpauseTarget{})
		case t.Paused && t.Stable != "" && t.Stable != t.TemplateHash:
			s.actions = append(s.actions, PromoteTarget{Revision: t.TemplateHash})
		default:
			if !s.adoptConfig() {
				s.followConfig()
			}
		}
		return
	case s.st.Phase == v1alpha1.PhaseFailed && s.failed(t.TemplateHash) && !t.Paused:
		// The rollback's pause was lost (a crash between status and
		// actions): the failed template must not roll out.
		s.actions = append(s.actions, HoldTarget{Candidate: t.TemplateHash, Stable: s.st.StableRevision})
		return
	case t.Candidate != t.TemplateHash:
		// A new template without a hold: the webhook was down or bypassed.
		s.warn("ReleaseBypassedAdmission", "Hold", "New revision of %s was not held at admission (release bypassed admission); holding it now", s.target())
		s.actions = append(s.actions, HoldTarget{Candidate: t.TemplateHash, Stable: s.st.StableRevision})
		return
	}
	if s.followConfig() {
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
	promote := s.uses(v1alpha1.ActionPromote)
	if !promote {
		if open := s.gate(v1alpha1.HookConfirmRollout, v1alpha1.PhaseWaiting, "approval"); !open {
			if s.st.Phase == v1alpha1.PhaseWaiting {
				// No traffic stays on a copy of a superseded revision while
				// the new one waits for approval.
				s.st.CanaryRevision = cand
				if s.st.CanaryWeight != 0 || s.st.Mirroring || s.st.Matching {
					s.setTraffic(0, false, false)
				}
				if s.in.Obs.Copy.Exists && s.in.Obs.Copy.Revision != cand {
					s.deleteCopyWhenRouted()
				}
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
	s.st.LoadCheckpoint = nil
	s.st.LastVerdict = ""
	s.st.Message = s.waitingForCopy()
	s.condition(v1alpha1.ConditionPromoted, metav1.ConditionFalse, "Progressing", "New revision detected, progressing canary analysis.")
	s.event("Synced", "Start", "New revision detected! Scaling up %s%s", s.target(), s.configNote())
	if promote {
		s.promote("promoted by user")
		return
	}
	s.ensureCopy(cand)
	s.after(pollTraffic)
}

// ensureCopy asks for the canary copy on cand. A copy that runs another
// revision is switched only once the data plane routes nothing to it, so
// an unanalysed revision never inherits the traffic of the last one.
func (s *stepper) ensureCopy(cand string) bool {
	if c := s.in.Obs.Copy; c.Exists && c.Revision != cand &&
		(s.st.CanaryWeight != 0 || s.st.Mirroring || s.st.Matching || !s.applied()) {
		s.st.Message = "waiting for the data plane to route around the copy of the superseded revision"
		s.after(pollTraffic)
		if start := s.st.ReleaseStartTime; start != nil && s.in.Now.Sub(start.Time) > s.in.Spec.ProgressDeadline() {
			s.warn("Synced", "ForceScaleDown", "Proxies did not route around the copy of the superseded revision of %s within the progress deadline; deleting it anyway", s.target())
			s.actions = append(s.actions, DeleteCopy{})
		}
		return false
	}
	s.actions = append(s.actions, EnsureCopy{Revision: cand, Replicas: s.copyReplicas()})
	return true
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
	case s.uses(v1alpha1.ActionAbort):
		s.setPhase(v1alpha1.PhaseFailed)
		s.st.FailedRevisions = appendUnique(s.st.FailedRevisions, cand)
		s.st.Message = "aborted by user before the release started"
		s.warn("Synced", "Abort", "Canary %s aborted by user", s.target())
		return
	case s.followConfig():
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
		s.event("Synced", "Restart", "New revision detected! Restarting analysis for %s%s", s.target(), s.configNote())
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
	switch {
	case s.uses(v1alpha1.ActionAbort):
		s.rollback(fmt.Sprintf("Rolling back %s: aborted by user", s.target()))
		return
	case s.uses(v1alpha1.ActionPromote):
		s.promote("promoted by user")
		return
	case s.followConfig():
		return
	}
	if !s.ensureCopy(cand) {
		return
	}
	if spec.Suspend || s.in.Paused {
		s.st.Message = "release paused"
		return
	}
	deadline := spec.ProgressDeadline()
	if !s.copyReady() || s.in.Obs.Copy.Revision != cand {
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
		// A copy scaling up for the next weight holds nothing until the
		// next check is due: only then (or before the first weight) does
		// the release say it waits for it, so a step's status is not
		// written twice more for a wait nobody sees.
		if s.st.StepStartTime == nil || !s.in.Now.Before(s.nextCheckAt()) {
			s.st.Message = s.waitingForCopy()
		}
		s.after(pollRollout)
		return
	}
	if !s.stableReady() {
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
