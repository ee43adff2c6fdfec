package rollout

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The end of a release: gates, promotion, rollback, termination.

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
	if !s.uses(v1alpha1.ActionPromote) && !s.gate(v1alpha1.HookConfirmPromotion, v1alpha1.PhaseWaitingPromotion, "promotion approval") {
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
	s.promoting("")
}

// promoting cuts traffic over to the proven revision while the user's
// Deployment rolls it out, for every strategy: the copy is scaled to the
// stable's size and gets all traffic (after progressive steps with
// stepWeightPromotion), the Deployment is unpaused and rolls out, and then
// finalising routes everything back to it. Old and new pods of the
// Deployment never share traffic, and until the copy is deleted there is
// an instant way back.
func (s *stepper) promoting(act string) {
	cand := s.st.CanaryRevision
	if s.promotionSuperseded(act) {
		return
	}
	if !s.ensureCopy(cand) || s.promotionPastDeadline() || !s.progressiveSteps() || !s.cutOver() {
		return
	}
	t := s.in.Obs.Target
	if t.Paused || t.Stable != cand {
		s.actions = append(s.actions, PromoteTarget{Revision: cand})
		s.st.Message = fmt.Sprintf("rolling revision %s out to deployment %s", cand, s.target())
		s.after(pollRollout)
		return
	}
	if !t.RolledOut || t.TemplateHash != cand {
		// The same words as when the rollout was asked for: one status
		// write for the whole rollout.
		s.st.Message = fmt.Sprintf("rolling revision %s out to deployment %s", cand, s.target())
		s.after(pollRollout)
		return
	}
	s.setPhase(v1alpha1.PhaseFinalising)
	s.setTraffic(0, false, false)
	s.st.Message = ""
	s.event("Synced", "Finalize", "Routing all traffic to primary %s", s.target())
	s.finalising()
}

// promotionSuperseded handles what ends a promotion early: an abort, the
// template back on the stable revision, or a newer revision (the analysis
// restarts on it; no traffic stays on the copy of the superseded one).
func (s *stepper) promotionSuperseded(act string) bool {
	t := s.in.Obs.Target
	cand := s.st.CanaryRevision
	if s.in.Paused {
		s.st.Message = "pause has no effect while promoting"
	}
	switch {
	case s.uses(v1alpha1.ActionAbort):
		s.rollbackPromotion(fmt.Sprintf("Rolling back %s: aborted by user during promotion", s.target()))
		return true
	case t.TemplateHash == cand:
		return false
	case t.Candidate != t.TemplateHash:
		s.warn("ReleaseBypassedAdmission", "Hold", "New revision of %s was not held at admission (release bypassed admission); holding it now", s.target())
		s.actions = append(s.actions, HoldTarget{Candidate: t.TemplateHash, Stable: s.promotedStable()})
		s.after(pollRollout)
		return true
	}
	// The Deployment's template changed: if it was already rolling the
	// promoted revision out, that revision is part of what its pods run.
	s.st.StableRevision = s.promotedStable()
	if s.st.StableRevision == cand {
		// It is what the stable pods run now, no candidate any more.
		s.st.CanaryRevision = ""
	}
	s.setTraffic(0, false, false)
	if t.TemplateHash == s.st.StableRevision {
		s.setPhase(v1alpha1.PhaseInitialized)
		s.st.CanaryRevision = ""
		s.event("Synced", "Cancel", "Promotion of %s cancelled: the template is back on the stable revision", s.target())
		s.idle("")
		return true
	}
	s.event("Synced", "Restart", "New revision detected! Restarting analysis for %s", s.target())
	s.setPhase(v1alpha1.PhaseProgressing)
	s.progressing(act)
	return true
}

// promotedStable is the stable revision to keep when a promotion ends
// early: the promoted revision once the Deployment was unpaused on it.
func (s *stepper) promotedStable() string {
	if t := s.in.Obs.Target; t.Stable != "" && t.Stable == s.st.CanaryRevision {
		return t.Stable
	}
	return s.st.StableRevision
}

// promotionPastDeadline rolls back a promotion that made no progress
// (copy ready, traffic applied, Deployment rolled out) within the progress
// deadline since its last step.
func (s *stepper) promotionPastDeadline() bool {
	since := s.st.LastTransitionTime.Time
	if s.st.StepStartTime != nil && s.st.StepStartTime.After(since) {
		since = s.st.StepStartTime.Time
	}
	if s.st.LastCheckTime != nil && s.st.LastCheckTime.After(since) {
		since = s.st.LastCheckTime.Time
	}
	if s.in.Now.Sub(since) <= s.in.Spec.ProgressDeadline() {
		return false
	}
	s.rollbackPromotion(fmt.Sprintf("Rolling back %s: promotion made no progress within the progress deadline (%s)", s.target(), s.st.Message))
	return true
}

// rollbackPromotion rolls back and, if the Deployment was already rolling
// the revision out, pauses it again on that (failed) template.
func (s *stepper) rollbackPromotion(reason string) {
	t := s.in.Obs.Target
	if !t.Paused {
		s.actions = append(s.actions, HoldTarget{Candidate: t.TemplateHash, Stable: s.st.StableRevision})
	}
	s.rollback(reason)
}

// progressiveSteps moves the rest of the traffic to the canary in steps
// of stepWeightPromotion (weighted canaries only); true once at 100.
func (s *stepper) progressiveSteps() bool {
	spec := s.in.Spec
	step := spec.Analysis.StepWeightPromotion
	if step <= 0 || spec.Strategy() != v1alpha1.StrategyCanary || s.st.CanaryWeight >= 100 {
		return true
	}
	if !s.trafficInForce(spec.ProgressDeadline()) {
		return false
	}
	if due := s.nextCheckAt(); s.in.Now.Before(due) {
		s.after(due.Sub(s.in.Now))
		return false
	}
	next := min(100, s.st.CanaryWeight+step)
	s.setTraffic(next, false, false)
	s.st.LastCheckTime = s.now()
	s.event("Synced", "Advance", "Advance %s canary weight %d", s.target(), next)
	return false
}

// cutOver routes all traffic to the copy once it runs as many ready pods
// as the stable (and the share of its own that canaryReadyThreshold asks
// for); true when the data plane applied it.
func (s *stepper) cutOver() bool {
	want := max(1, s.in.Obs.Target.Replicas)
	c := s.in.Obs.Copy
	if s.st.CanaryWeight < 100 && (!s.copyReady() || c.Revision != s.st.CanaryRevision || c.ReadyReplicas < want) {
		s.st.Message = fmt.Sprintf("scaling deployment %s-canary.%s to %d ready pods before routing all traffic to it", s.in.Name, s.in.Namespace, want)
		s.after(pollRollout)
		return false
	}
	if s.st.CanaryWeight != 100 || s.st.Mirroring || s.st.Matching {
		s.setTraffic(100, false, false)
		s.st.StepStartTime = s.now()
		s.event("Synced", "CutOver", "Routing all traffic to canary %s", s.target())
	}
	if !s.applied() {
		s.st.Message = "waiting for the data plane to route all traffic to the canary"
		s.after(pollTraffic)
		return false
	}
	return true
}

func (s *stepper) finalising() {
	if s.st.CanaryWeight != 0 {
		s.setTraffic(0, false, false)
	}
	if !s.applied() && s.in.Now.Sub(s.st.LastTransitionTime.Time) <= s.in.Spec.ProgressDeadline() {
		s.st.Message = "waiting for the data plane to route all traffic to stable"
		s.after(pollTraffic)
		return
	}
	if !s.applied() {
		s.warn("Synced", "ForceScaleDown", "Proxies did not confirm weight 0 for %s within the progress deadline; finishing the promotion anyway", s.target())
	}
	s.actions = append(s.actions, DeleteCopy{})
	if t := s.in.Obs.Target; t.TemplateHash == s.st.CanaryRevision {
		s.st.StableConfig = t.Config
	}
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
	if t := s.in.Obs.Target; t.TemplateHash == cand {
		if changed := v1alpha1.ChangedConfig(s.st.StableConfig, t.Config); len(changed) > 0 {
			s.st.Message += fmt.Sprintf("; the stable pods keep the previous content of %s (the objects keep what was applied)", strings.Join(changed, ", "))
		}
	}
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
		s.deleteCopyWhenRouted()
		s.after(pollTraffic)
		return
	}
	if s.in.Revert && s.in.Obs.Target.Found {
		s.actions = append(s.actions, ReleaseTarget{Revision: s.in.Obs.Target.TemplateHash})
	}
	// The finalizer goes only once the Services are deleted: none is left
	// behind, whether the Canary was deleted, its Deployment opted out or
	// serin is being uninstalled.
	s.actions = append(s.actions, DeleteServices{}, Finalized{})
	s.setPhase(v1alpha1.PhaseTerminated)
}

// copyReplicas is how many pods the canary copy runs: with the Proportional
// policy, enough for the larger of the current and the next weight.
func (s *stepper) copyReplicas() int32 {
	spec := s.in.Spec
	p := spec.CanaryReplicas
	stable := s.in.Obs.Target.Replicas
	if s.st.Phase == v1alpha1.PhasePromoting {
		// The copy takes all traffic while the Deployment rolls out.
		return max(1, stable, p.Count)
	}
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
