package rollout

import (
	"fmt"
	"math"
	"slices"
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
