package rollout

import (
	"fmt"
	"strings"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The analysis half of a release: traffic in force, checks, steps.

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
	s.st.Message = waitingForWeight(s.st.CanaryWeight)
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
	interval := s.in.Spec.IntervalDuration()
	if !s.checkDue(interval) {
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
	s.keepCheckpoint(v)
	if s.judged(v) {
		s.passCheck(act, v)
	}
}

// checkDue reports whether the next check is due. Before the analysis
// starts it runs the first check when that is due; between checks it lets
// the comparative judge look.
func (s *stepper) checkDue(interval time.Duration) bool {
	if s.st.AnalysisStartTime == nil {
		if s.st.LastCheckTime == nil || !s.in.Now.Before(s.st.LastCheckTime.Add(interval)) {
			s.firstCheck()
		} else {
			s.after(s.st.LastCheckTime.Add(interval).Sub(s.in.Now))
		}
		return false
	}
	due := s.nextCheckAt()
	if s.in.Now.Before(due) {
		s.st.Message = ""
		s.fastCheck(due)
		return false
	}
	return true
}

// judged records the verdict of a check and acts on one that does not
// pass it (rollback, no data, hold); it reports whether the check passed.
func (s *stepper) judged(v *Verdict) bool {
	if v.Summary != "" {
		s.st.LastVerdict = string(v.Decision) + ": " + v.Summary
	} else {
		s.st.LastVerdict = string(v.Decision)
	}
	switch v.Decision {
	case Rollback:
		s.rollback(v.Message)
		return false
	case NoData:
		s.noData(v)
		return false
	case Hold:
		if v.FailedCheck {
			s.failCheck(v.Message)
		} else {
			s.st.Message = v.Message
		}
		return false
	}
	return true
}

// noData waits on a check without traffic to judge, and rolls back once
// the step has had none for the progress deadline.
func (s *stepper) noData(v *Verdict) {
	spec := s.in.Spec
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
}

// passCheck counts a passed check and moves the release on.
func (s *stepper) passCheck(act string, v *Verdict) {
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
	s.keepCheckpoint(s.in.Obs.Verdict)
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
	// Said in the write of the weight itself: the data plane's answer
	// then costs the one more write that records it, not two.
	s.st.Message = waitingForWeight(next)
	s.event("Synced", "Advance", "Advance %s canary weight %d", s.target(), next)
}

// waitingForWeight is the message of a release waiting for the data plane
// to apply weight w.
func waitingForWeight(w int32) string {
	return fmt.Sprintf("waiting for the data plane to apply weight %d", w)
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

// keepCheckpoint records the release's load-report counts a verdict
// carries, for the next check (and a restarted serin) to build on.
func (s *stepper) keepCheckpoint(v *Verdict) {
	if v.Checkpoint != nil {
		s.st.LoadCheckpoint = v.Checkpoint.DeepCopy()
	}
}
