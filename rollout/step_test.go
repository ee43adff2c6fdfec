package rollout

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// world is a small simulation of everything around Step: the user's
// Deployment, the canary copy, the data plane and analysis. It applies
// Step's actions the way the reconciler would, with an injected clock.
type world struct {
	t      *testing.T
	now    time.Time
	spec   *v1alpha1.CanarySpec
	status v1alpha1.CanaryStatus

	target Target
	copy   Copy
	// ackDelay is how many steps the data plane takes to ACK a change.
	ackDelay, ackIn int
	acked           struct {
		weight          int32
		mirror, match   bool
		everInitialized bool
	}
	rejected string
	// proxies, when set, is how many proxies are subscribed (default 2).
	proxies *int
	// stuckRollout keeps an unpaused Deployment from finishing its rollout.
	stuckRollout bool
	// copyScaling keeps the copy from getting ready.
	copyScaling bool
	action      string
	paused      bool
	deleting    bool
	revert      bool
	// verdict answers analysis questions; hooks answers hook calls.
	verdict func(w *world) Verdict
	hooks   map[v1alpha1.HookType]bool
	asked   []string

	events    []string
	finalized bool
	released  bool
	finished  []Finished
	// services says whether the Services serin owns exist.
	services bool
	// weights the data plane was sent, in order, and the weight status
	// held at each send.
	sent []int32
	// config is what the tracked ConfigMaps and Secrets hold.
	config Config
}

func newWorld(t *testing.T, spec *v1alpha1.CanarySpec) *world {
	v1alpha1.SetDefaults(spec)
	return &world{
		t: t, now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), spec: spec,
		target: Target{Found: true, TemplateHash: "v1", Replicas: 3, ReadyReplicas: 3, Available: true, RolledOut: true},
		hooks:  map[v1alpha1.HookType]bool{},
		verdict: func(*world) Verdict {
			return Verdict{Decision: Promote, Message: "all checks passed"}
		},
	}
}

func weightedSpec() *v1alpha1.CanarySpec {
	return &v1alpha1.CanarySpec{
		TargetRef: v1alpha1.LocalObjectReference{Name: "podinfo"},
		Analysis: &v1alpha1.CanaryAnalysis{Interval: "1m", Threshold: 3, StepWeight: 10, MaxWeight: 50,
			Metrics: v1alpha1.DefaultMetrics()},
	}
}

// apply sets a new template on the Deployment as the webhook would hold it.
func (w *world) apply(rev string) {
	stable := w.target.TemplateHash
	if w.target.Candidate != "" && w.target.Candidate != w.target.Stable {
		stable = w.target.Stable
	}
	w.target.BaseHash = rev
	rev = withConfigHash(rev, w.target.Config)
	w.target.TemplateHash = rev
	if rev == stable {
		w.target.Candidate = stable
		w.target.Stable = stable
		return
	}
	w.target.Candidate, w.target.Stable, w.target.Paused = rev, stable, true
	w.target.RolledOut = true // paused: nothing rolls
}

// step runs one reconcile: Step with its questions answered, then the
// actions, then time passes.
func (w *world) step(advance time.Duration) Output {
	w.t.Helper()
	w.dataPlane()
	in := Input{Name: "podinfo", Namespace: "test", Spec: w.spec, Status: w.status, Action: w.action,
		Paused: w.paused, Deleting: w.deleting, Revert: w.revert, Now: w.now,
		Obs: Observations{Target: w.target, Copy: w.copy, Traffic: w.traffic(), Config: w.config}}
	var out Output
	for range 5 {
		out = Step(in)
		if out.Needs == nil {
			break
		}
		if out.Needs.Verdict {
			v := w.verdict(w)
			in.Obs.Verdict = &v
			w.asked = append(w.asked, "verdict")
		}
		for _, h := range out.Needs.Hooks {
			if in.Obs.Hooks == nil {
				in.Obs.Hooks = map[v1alpha1.HookType]HookResult{}
			}
			in.Obs.Hooks[h] = HookResult{Passed: w.hooks[h], Message: string(h)}
			w.asked = append(w.asked, string(h))
		}
	}
	if out.Needs != nil {
		w.t.Fatalf("Step still needs %+v after answering", out.Needs)
	}
	if out.Status.CanaryWeight != w.status.CanaryWeight || out.Status.Mirroring != w.status.Mirroring || out.Status.Matching != w.status.Matching {
		w.sent = append(w.sent, out.Status.CanaryWeight)
		w.ackIn = w.ackDelay
	}
	w.status = out.Status
	for _, a := range out.Actions {
		w.do(a)
	}
	w.now = w.now.Add(advance)
	return out
}

// dataPlane ACKs the traffic in status after ackDelay steps.
func (w *world) dataPlane() {
	if w.rejected != "" {
		return
	}
	if w.ackIn > 0 {
		w.ackIn--
		return
	}
	w.acked.weight, w.acked.mirror, w.acked.match = w.status.CanaryWeight, w.status.Mirroring, w.status.Matching
	w.acked.everInitialized = true
}

func (w *world) traffic() Traffic {
	applied := w.acked.everInitialized && w.acked.weight == w.status.CanaryWeight && w.acked.mirror == w.status.Mirroring && w.acked.match == w.status.Matching
	proxies := 2
	if w.proxies != nil {
		proxies = *w.proxies
	}
	return Traffic{Applied: applied && w.rejected == "", Proxies: proxies, Rejected: w.rejected}
}

func (w *world) do(a Action) {
	switch a := a.(type) {
	case EnsureCopy:
		w.copy = Copy{Exists: true, Revision: a.Revision, Ready: !w.copyScaling, ReadyReplicas: a.Replicas}
	case DeleteCopy:
		w.copy = Copy{}
	case SetConfig:
		w.setConfig(a)
	case EnsureServices:
		w.services = true
	case DeleteServices:
		w.services = false
	case PromoteTarget:
		w.target.Stable, w.target.Paused = a.Revision, false
		w.target.RolledOut = !w.stuckRollout
	case UnpauseTarget:
		w.target.Paused = false
	case HoldTarget:
		w.target.Candidate, w.target.Stable, w.target.Paused = a.Candidate, a.Stable, true
	case ReleaseTarget:
		w.target.Paused, w.target.Candidate, w.target.Stable = false, "", ""
		w.released = true
	case Finalized:
		w.finalized = true
	case Event:
		w.events = append(w.events, a.Message)
	case Finished:
		w.finished = append(w.finished, a)
	case RunHooks:
		w.events = append(w.events, "hooks "+string(a.Type))
	default:
		w.t.Fatalf("unknown action %T", a)
	}
}

// run steps until cond holds (or fails after max steps).
func (w *world) run(max int, every time.Duration, cond func() bool) {
	w.t.Helper()
	for range max {
		if cond() {
			return
		}
		w.step(every)
	}
	if !cond() {
		w.t.Fatalf("condition not reached after %d steps: phase %s weight %d msg %q events %q", max, w.status.Phase, w.status.CanaryWeight, w.status.Message, w.events)
	}
}

func (w *world) phase(p v1alpha1.CanaryPhase) func() bool {
	return func() bool { return w.status.Phase == p }
}

func (w *world) initialized() {
	w.t.Helper()
	w.run(5, time.Second, w.phase(v1alpha1.PhaseInitialized))
}

func (w *world) hasEvents(t *testing.T, want ...string) {
	t.Helper()
	i := 0
	for _, e := range w.events {
		if i < len(want) && strings.Contains(e, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Fatalf("events missing %q in order; got:\n%s", want[i], strings.Join(w.events, "\n"))
	}
}

func TestStepWeightedPromotion(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.initialized()
	if w.status.StableRevision != "v1" || w.status.Phase != v1alpha1.PhaseInitialized {
		t.Fatalf("after init: %+v", w.status)
	}
	w.apply("v2")
	w.run(100, 20*time.Second, w.phase(v1alpha1.PhaseSucceeded))
	if got, want := w.sent, []int32{10, 20, 30, 40, 50, 100, 0}; !slices.Equal(got, want) {
		t.Fatalf("weights sent %v, want %v", got, want)
	}
	if w.copy.Exists || w.target.Paused || w.target.Stable != "v2" || w.status.StableRevision != "v2" {
		t.Fatalf("after promotion: copy %+v target %+v status %+v", w.copy, w.target, w.status)
	}
	w.hasEvents(t, "Initialization done! podinfo.test", "New revision detected! Scaling up podinfo.test",
		"Starting canary analysis for podinfo.test", "Advance podinfo.test canary weight 10",
		"Advance podinfo.test canary weight 50", "Copying podinfo.test template spec",
		"Routing all traffic to primary", "Promotion completed! Scaling down podinfo.test", "hooks post-rollout")
	if len(w.finished) != 1 || !w.finished[0].Succeeded {
		t.Fatalf("finished = %+v", w.finished)
	}
	// Checks ran one interval apart: 5 weights, one check each.
	if n := strings.Count(strings.Join(w.asked, ","), "verdict"); n != 5 {
		t.Fatalf("verdicts asked %d times, want 5: %v", n, w.asked)
	}
}

func TestStepRollbackOnFailedChecks(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.initialized()
	w.apply("v3")
	w.verdict = func(w *world) Verdict {
		if w.status.CanaryWeight >= 20 {
			return Verdict{Decision: Hold, FailedCheck: true, Message: "Halt podinfo.test advancement success rate 70.00% < 99%"}
		}
		return Verdict{Decision: Promote}
	}
	w.run(100, 20*time.Second, w.phase(v1alpha1.PhaseFailed))
	if w.status.FailedChecks != 3 || w.status.CanaryWeight != 0 || !slices.Contains(w.status.FailedRevisions, "v3") {
		t.Fatalf("status after rollback: %+v", w.status)
	}
	// The copy goes only after the data plane applied weight 0.
	w.step(time.Second)
	if w.copy.Exists {
		t.Fatal("copy not deleted after weight 0 was applied")
	}
	if !w.target.Paused || w.target.TemplateHash != "v3" {
		t.Fatalf("Deployment must stay paused on the failed template: %+v", w.target)
	}
	w.hasEvents(t, "Advance podinfo.test canary weight 20", "Halt podinfo.test advancement success rate 70.00% < 99%",
		"Rolling back podinfo.test failed checks threshold reached 3", "Canary failed! Scaling down podinfo.test")
	if got := w.sent; got[len(got)-1] != 0 || slices.Max(got) != 20 {
		t.Fatalf("weights sent %v", got)
	}

	// Re-applying the failed revision starts nothing.
	w.apply("v3")
	for range 3 {
		w.step(time.Minute)
	}
	if w.status.Phase != v1alpha1.PhaseFailed || w.copy.Exists {
		t.Fatalf("failed revision restarted: %+v", w.status)
	}
	// serin retry runs it again.
	w.action = "retry/1"
	w.step(time.Second)
	if w.status.Phase != v1alpha1.PhaseProgressing || w.status.CanaryRevision != "v3" || slices.Contains(w.status.FailedRevisions, "v3") {
		t.Fatalf("retry: %+v", w.status)
	}
	// A new revision during the retried release restarts on it.
	w.verdict = func(*world) Verdict { return Verdict{Decision: Promote} }
	w.run(20, 20*time.Second, func() bool { return w.status.CanaryWeight == 20 })
	w.apply("v4")
	w.step(time.Second)
	if w.status.CanaryRevision != "v4" || w.status.CanaryWeight != 0 || w.status.FailedChecks != 0 {
		t.Fatalf("restart on newest: %+v", w.status)
	}
	w.run(100, 20*time.Second, w.phase(v1alpha1.PhaseSucceeded))
	if w.target.Stable != "v4" || w.target.Paused {
		t.Fatalf("v4 not promoted: %+v", w.target)
	}
}

func TestStepNoDataWaitsThenFails(t *testing.T) {
	spec := weightedSpec()
	deadline := int32(300)
	spec.ProgressDeadlineSeconds = &deadline
	w := newWorld(t, spec)
	w.initialized()
	w.apply("v2")
	w.verdict = func(*world) Verdict { return Verdict{Decision: NoData, Message: "no traffic"} }
	w.run(10, 20*time.Second, func() bool { return w.status.CanaryWeight == 10 && w.status.StepStartTime != nil })
	start := w.now
	for w.now.Sub(start) < 4*time.Minute {
		w.step(30 * time.Second)
		if w.status.Phase != v1alpha1.PhaseProgressing || w.status.FailedChecks != 0 || w.status.CanaryWeight != 10 {
			t.Fatalf("no data must wait, never fail or pass: %+v", w.status)
		}
	}
	w.run(20, 30*time.Second, w.phase(v1alpha1.PhaseFailed))
	if !strings.Contains(w.status.Message, "no traffic") {
		t.Fatalf("failure must say there was no traffic: %q", w.status.Message)
	}
	w.hasEvents(t, "no data to judge yet (for 1m20s); waiting: no traffic", "Rolling back podinfo.test: no data to judge for 5m20s, past the progress deadline 5m0s: no traffic")
}

func TestStepWaitsForAckBeforeJudging(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.initialized()
	w.ackDelay = 4
	w.apply("v2")
	w.run(10, time.Second, func() bool { return w.status.CanaryWeight == 10 })
	for range 4 {
		out := w.step(time.Minute)
		if w.status.StepStartTime != nil {
			t.Fatalf("step started before the ACK: %+v", out.Status)
		}
		if slices.Contains(w.asked, "verdict") {
			t.Fatal("analysis asked about a weight not in force")
		}
	}
	w.step(time.Second)
	if w.status.StepStartTime == nil {
		t.Fatal("ACK not noticed")
	}
}

func TestStepNACKHalts(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.initialized()
	w.apply("v2")
	w.run(10, time.Second, func() bool { return w.status.CanaryWeight == 10 })
	w.rejected = "EDS: locality weights sum to 0"
	for range 5 {
		w.step(time.Minute)
		if w.status.CanaryWeight != 10 || w.status.Phase != v1alpha1.PhaseProgressing {
			t.Fatalf("NACK must halt, not move: %+v", w.status)
		}
	}
	w.hasEvents(t, "the data plane rejected the configuration: EDS: locality weights sum to 0")
	if n := strings.Count(strings.Join(w.events, "\n"), "rejected"); n != 1 {
		t.Fatalf("rejection event repeated %d times", n)
	}
}

func TestStepStrategies(t *testing.T) {
	tests := []struct {
		name       string
		spec       func(*v1alpha1.CanarySpec)
		wantSent   []int32
		wantEvents []string
		mirrorSeen bool
		matchSeen  bool
	}{
		{name: "step weights", spec: func(s *v1alpha1.CanarySpec) {
			s.Analysis.StepWeight, s.Analysis.MaxWeight, s.Analysis.StepWeights = 0, 0, []int32{1, 5, 25, 80}
		}, wantSent: []int32{1, 5, 25, 80, 100, 0}},
		{name: "progressive promotion", spec: func(s *v1alpha1.CanarySpec) {
			s.Analysis.StepWeight, s.Analysis.MaxWeight, s.Analysis.StepWeightPromotion = 25, 50, 30
		}, wantSent: []int32{25, 50, 80, 100, 0}},
		{name: "mirroring pre-stage", spec: func(s *v1alpha1.CanarySpec) {
			s.Analysis.StepWeight, s.Analysis.MaxWeight, s.Analysis.Mirror, s.Analysis.MirrorWeight = 25, 50, true, 50
		}, wantSent: []int32{0, 25, 50, 100, 0}, mirrorSeen: true,
			wantEvents: []string{"Advance podinfo.test canary mirroring 50%", "Advance podinfo.test canary weight 25"}},
		{name: "blue/green", spec: func(s *v1alpha1.CanarySpec) {
			s.Analysis.StepWeight, s.Analysis.MaxWeight, s.Analysis.Iterations = 0, 0, 3
		}, wantSent: []int32{100, 0}, wantEvents: []string{"Advance podinfo.test canary iteration 1/3", "Advance podinfo.test canary iteration 3/3", "Promotion completed!"}},
		{name: "blue/green with mirroring", spec: func(s *v1alpha1.CanarySpec) {
			s.Analysis.StepWeight, s.Analysis.MaxWeight, s.Analysis.Iterations, s.Analysis.Mirror = 0, 0, 2, true
		}, wantSent: []int32{0, 100, 0}, mirrorSeen: true, wantEvents: []string{"mirroring 100%", "iteration 2/2"}},
		{name: "A/B testing", spec: func(s *v1alpha1.CanarySpec) {
			s.Analysis.StepWeight, s.Analysis.MaxWeight, s.Analysis.Iterations = 0, 0, 2
			s.Analysis.Match = []v1alpha1.HTTPMatchRequest{{Headers: map[string]v1alpha1.StringMatch{"x-canary": {Exact: "insider"}}}}
		}, wantSent: []int32{0, 100, 0}, matchSeen: true, wantEvents: []string{"routing matching requests", "iteration 2/2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &v1alpha1.CanarySpec{TargetRef: v1alpha1.LocalObjectReference{Name: "podinfo"},
				Analysis: &v1alpha1.CanaryAnalysis{Interval: "1m", Threshold: 2, Metrics: v1alpha1.DefaultMetrics()}}
			tt.spec(spec)
			w := newWorld(t, spec)
			w.initialized()
			w.apply("v2")
			mirror, match := false, false
			w.run(100, 20*time.Second, func() bool {
				mirror = mirror || w.status.Mirroring
				match = match || w.status.Matching
				return w.status.Phase == v1alpha1.PhaseSucceeded
			})
			if !slices.Equal(w.sent, tt.wantSent) {
				t.Errorf("weights sent %v, want %v", w.sent, tt.wantSent)
			}
			if mirror != tt.mirrorSeen || match != tt.matchSeen {
				t.Errorf("mirroring seen %v (want %v), matching seen %v (want %v)", mirror, tt.mirrorSeen, match, tt.matchSeen)
			}
			w.hasEvents(t, tt.wantEvents...)
			if w.target.Stable != "v2" || w.copy.Exists {
				t.Errorf("not promoted: %+v copy %+v", w.target, w.copy)
			}
		})
	}
}

func TestStepGates(t *testing.T) {
	spec := weightedSpec()
	spec.Analysis.StepWeight, spec.Analysis.MaxWeight = 25, 50
	spec.Analysis.Webhooks = []v1alpha1.CanaryWebhook{
		{Name: "approve", Type: v1alpha1.HookConfirmRollout, URL: "http://gate/approve"},
		{Name: "accept", Type: v1alpha1.HookPreRollout, URL: "http://tester/"},
		{Name: "traffic", Type: v1alpha1.HookConfirmTrafficIncrease, URL: "http://gate/check"},
		{Name: "promotion", Type: v1alpha1.HookConfirmPromotion, URL: "http://gate/check"},
	}
	w := newWorld(t, spec)
	w.initialized()
	w.apply("v2")
	for range 3 {
		w.step(time.Minute)
	}
	if w.status.Phase != v1alpha1.PhaseWaiting || w.copy.Exists {
		t.Fatalf("confirm-rollout closed: want Waiting without a copy, got %s", w.status.Phase)
	}
	w.hooks[v1alpha1.HookConfirmRollout] = true
	w.step(time.Second)
	if w.status.Phase != v1alpha1.PhaseProgressing {
		t.Fatalf("gate opened: %s", w.status.Phase)
	}
	// pre-rollout failing counts failed checks.
	w.step(time.Second)
	if w.status.FailedChecks != 1 || w.status.CanaryWeight != 0 {
		t.Fatalf("pre-rollout failure: %+v", w.status)
	}
	w.hooks[v1alpha1.HookPreRollout] = true
	w.run(5, time.Minute, func() bool { return w.status.Message == "waiting for confirm-traffic-increase approval" })
	if w.status.CanaryWeight != 0 {
		t.Fatal("traffic increased with the gate closed")
	}
	w.hooks[v1alpha1.HookConfirmTrafficIncrease] = true
	w.run(20, time.Minute, w.phase(v1alpha1.PhaseWaitingPromotion))
	if w.status.CanaryWeight != 50 || !w.target.Paused {
		t.Fatalf("waiting promotion: %+v", w.status)
	}
	w.hooks[v1alpha1.HookConfirmPromotion] = true
	w.run(20, time.Minute, w.phase(v1alpha1.PhaseSucceeded))
	w.hasEvents(t, "waiting for approval", "Pre-rollout checks passed", "waiting for traffic increase approval", "waiting for promotion approval", "Promotion completed!")
}

func TestStepManualActions(t *testing.T) {
	t.Run("promote skips the remaining steps", func(t *testing.T) {
		w := newWorld(t, weightedSpec())
		w.initialized()
		w.apply("v2")
		w.run(10, time.Minute, func() bool { return w.status.CanaryWeight == 20 })
		w.action = "promote/a"
		w.run(10, time.Second, w.phase(v1alpha1.PhaseSucceeded))
		// No more analysis steps: the cut-over to the copy, then back.
		if want := []int32{10, 20, 100, 0}; !slices.Equal(w.sent, want) {
			t.Fatalf("weights %v, want %v", w.sent, want)
		}
	})
	t.Run("abort rolls back", func(t *testing.T) {
		w := newWorld(t, weightedSpec())
		w.initialized()
		w.apply("v2")
		w.run(10, time.Minute, func() bool { return w.status.CanaryWeight == 20 })
		w.action = "abort/b"
		w.step(time.Second)
		if w.status.Phase != v1alpha1.PhaseFailed || w.status.CanaryWeight != 0 || !strings.Contains(w.status.Message, "aborted by user") {
			t.Fatalf("abort: %+v", w.status)
		}
		// The same annotation is handled once.
		w.apply("v3")
		w.run(5, time.Second, w.phase(v1alpha1.PhaseProgressing))
		w.step(time.Second)
		if w.status.Phase != v1alpha1.PhaseProgressing {
			t.Fatal("an old abort annotation aborted a new release")
		}
	})
	t.Run("pause holds everything, resume continues", func(t *testing.T) {
		w := newWorld(t, weightedSpec())
		w.initialized()
		w.apply("v2")
		w.run(10, time.Minute, func() bool { return w.status.CanaryWeight == 20 })
		w.paused = true
		for range 5 {
			w.step(time.Minute)
		}
		if w.status.CanaryWeight != 20 || w.status.Message != "release paused" {
			t.Fatalf("paused: %+v", w.status)
		}
		w.paused = false
		w.run(50, time.Minute, w.phase(v1alpha1.PhaseSucceeded))
	})
	t.Run("skip analysis promotes a ready canary", func(t *testing.T) {
		spec := weightedSpec()
		spec.SkipAnalysis = true
		w := newWorld(t, spec)
		w.initialized()
		w.apply("v2")
		w.run(10, time.Second, w.phase(v1alpha1.PhaseSucceeded))
		// No analysis steps: only the cut-over to the copy, then back.
		if want := []int32{100, 0}; !slices.Equal(w.sent, want) {
			t.Fatalf("skipAnalysis shifted traffic: %v, want %v", w.sent, want)
		}
	})
}

func TestStepProgressDeadline(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.initialized()
	w.apply("v2")
	w.step(time.Second)
	w.copy.Ready = false
	for range 20 {
		w.step(time.Minute)
		w.copy.Ready = false
	}
	if w.status.Phase != v1alpha1.PhaseFailed || !strings.Contains(w.status.Message, "not ready: progress deadline exceeded") {
		t.Fatalf("deadline: %+v", w.status)
	}
}

func TestStepRevertAndBypass(t *testing.T) {
	t.Run("template reverted mid-release cancels and unpauses", func(t *testing.T) {
		w := newWorld(t, weightedSpec())
		w.initialized()
		w.apply("v2")
		w.run(10, time.Minute, func() bool { return w.status.CanaryWeight == 20 })
		w.apply("v1")
		w.step(time.Second)
		w.step(time.Second)
		if w.status.Phase != v1alpha1.PhaseInitialized || w.status.CanaryWeight != 0 || w.copy.Exists || w.target.Paused {
			t.Fatalf("revert: status %+v copy %+v target %+v", w.status, w.copy, w.target)
		}
	})
	t.Run("revision that slipped past the webhook is held late", func(t *testing.T) {
		w := newWorld(t, weightedSpec())
		w.initialized()
		w.target.TemplateHash = "v2" // no hold: webhook down
		w.step(time.Second)
		if !w.target.Paused || w.target.Candidate != "v2" || w.target.Stable != "v1" {
			t.Fatalf("bypass not repaired: %+v", w.target)
		}
		w.hasEvents(t, "bypassed admission")
		w.run(100, 20*time.Second, w.phase(v1alpha1.PhaseSucceeded))
	})
}

func TestStepTerminate(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.initialized()
	w.apply("v2")
	w.run(10, time.Minute, func() bool { return w.status.CanaryWeight == 20 })
	w.deleting, w.revert = true, true
	w.ackDelay = 1
	w.run(10, time.Second, func() bool { return w.finalized })
	if w.copy.Exists || w.target.Paused || !w.released || w.status.Phase != v1alpha1.PhaseTerminated {
		t.Fatalf("terminate: %+v %+v", w.status, w.target)
	}
	if w.sent[len(w.sent)-1] != 0 {
		t.Fatal("traffic not routed to stable before deleting the copy")
	}
	if w.services {
		t.Fatal("the Services serin owns outlived the Canary")
	}
}

func TestCopyReplicasFollowTraffic(t *testing.T) {
	spec := weightedSpec()
	spec.Analysis.StepWeight, spec.Analysis.MaxWeight = 20, 60
	v1alpha1.SetDefaults(spec)
	for _, tt := range []struct {
		weight, stable, want int32
	}{{0, 10, 2}, {20, 10, 4}, {40, 10, 6}, {60, 10, 6}, {0, 1, 1}, {40, 3, 2}} {
		s := &stepper{in: Input{Spec: spec, Obs: Observations{Target: Target{Replicas: tt.stable}}}, st: v1alpha1.CanaryStatus{CanaryWeight: tt.weight}}
		if got := s.copyReplicas(); got != tt.want {
			t.Errorf("weight %d of %d stable: %d replicas, want %d", tt.weight, tt.stable, got, tt.want)
		}
	}
}

func TestStepComparativeJudgeRollsBackBetweenChecks(t *testing.T) {
	spec := weightedSpec()
	spec.Analysis.Interval = "1m"
	spec.Judge = &v1alpha1.Judge{Kind: v1alpha1.JudgeComparative}
	w := newWorld(t, spec)
	w.initialized()
	w.apply("v2")
	w.run(10, time.Second, func() bool { return w.status.CanaryWeight == 10 && w.status.StepStartTime != nil })
	stepStart := w.now
	w.verdict = func(w *world) Verdict {
		if w.now.Sub(stepStart) >= 12*time.Second {
			return Verdict{Decision: Rollback, Message: "Rolling back podinfo.test: canary error rate 30% > stable 0% + 1pp (p < 0.01)"}
		}
		return Verdict{Decision: Hold, Message: "inconclusive"}
	}
	w.run(20, time.Second, w.phase(v1alpha1.PhaseFailed))
	if took := w.now.Sub(stepStart); took > 20*time.Second {
		t.Fatalf("rollback took %s; the comparative judge must not wait for the interval", took)
	}
	if w.status.FailedChecks != 0 {
		t.Fatalf("fast checks must not count failed checks: %d", w.status.FailedChecks)
	}
	w.hasEvents(t, "canary error rate 30%")
}

// TestStepServiceActions: the Services hooks address exist from the first
// step on, follow the spec on every step of a live Canary, and are deleted
// before the finalizer goes.
func TestStepServiceActions(t *testing.T) {
	spec := weightedSpec()
	v1alpha1.SetDefaults(spec)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	stable := Target{Found: true, TemplateHash: "v1", Replicas: 3, ReadyReplicas: 3, Available: true, RolledOut: true}
	held := Target{Found: true, TemplateHash: "v2", Candidate: "v2", Stable: "v1", Paused: true, Replicas: 3, ReadyReplicas: 3, Available: true, RolledOut: true}
	applied := Traffic{Applied: true, Proxies: 2}
	tests := []struct {
		name     string
		status   v1alpha1.CanaryStatus
		deleting bool
		obs      Observations
		// ensure: EnsureServices is the last action; delete: DeleteServices
		// comes right before Finalized.
		ensure, delete bool
	}{
		{name: "no Deployment yet", obs: Observations{Target: Target{}}},
		{name: "first step, stable pods not ready", obs: Observations{Target: Target{Found: true, TemplateHash: "v1", Replicas: 3}}, ensure: true},
		{name: "initialized", status: v1alpha1.CanaryStatus{Phase: v1alpha1.PhaseInitializing}, obs: Observations{Target: stable, Traffic: applied}, ensure: true},
		{name: "release starts", status: v1alpha1.CanaryStatus{Phase: v1alpha1.PhaseInitialized, StableRevision: "v1"},
			obs: Observations{Target: held, Traffic: applied}, ensure: true},
		{name: "progressing, copy not ready", status: v1alpha1.CanaryStatus{Phase: v1alpha1.PhaseProgressing, StableRevision: "v1", CanaryRevision: "v2",
			ReleaseStartTime: &metav1.Time{Time: now}}, obs: Observations{Target: held, Copy: Copy{Exists: true, Revision: "v2"}, Traffic: applied}, ensure: true},
		{name: "succeeded", status: v1alpha1.CanaryStatus{Phase: v1alpha1.PhaseSucceeded, StableRevision: "v2"},
			obs: Observations{Target: Target{Found: true, TemplateHash: "v2", Candidate: "v2", Stable: "v2", Replicas: 3, ReadyReplicas: 3, Available: true, RolledOut: true}, Traffic: applied}, ensure: true},
		{name: "deleted mid-release, traffic not back on stable yet", deleting: true,
			status: v1alpha1.CanaryStatus{Phase: v1alpha1.PhaseProgressing, CanaryWeight: 20, CanaryRevision: "v2"},
			obs:    Observations{Target: held, Copy: Copy{Exists: true, Revision: "v2", Ready: true}, Traffic: applied}},
		{name: "deleted, copy gone", deleting: true, status: v1alpha1.CanaryStatus{Phase: v1alpha1.PhaseTerminating},
			obs: Observations{Target: held, Traffic: applied}, delete: true},
		{name: "deleted without a Deployment", deleting: true, status: v1alpha1.CanaryStatus{Phase: v1alpha1.PhaseSucceeded},
			obs: Observations{Traffic: applied}, delete: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Step(Input{Name: "podinfo", Namespace: "test", Spec: spec, Status: tt.status, Deleting: tt.deleting, Revert: tt.deleting, Now: now, Obs: tt.obs})
			if out.Needs != nil {
				t.Fatalf("Step needs %+v", out.Needs)
			}
			var ensures, deletes int
			for _, a := range out.Actions {
				switch a.(type) {
				case EnsureServices:
					ensures++
				case DeleteServices:
					deletes++
				}
			}
			n := len(out.Actions)
			gotEnsure := ensures == 1 && out.Actions[n-1] == Action(EnsureServices{})
			gotDelete := deletes == 1 && n >= 2 && out.Actions[n-2] == Action(DeleteServices{}) && out.Actions[n-1] == Action(Finalized{})
			if gotEnsure != tt.ensure || (ensures > 0 && !gotEnsure) || gotDelete != tt.delete || (deletes > 0 && !gotDelete) {
				t.Fatalf("actions %#v: want EnsureServices last %v, DeleteServices before Finalized %v", out.Actions, tt.ensure, tt.delete)
			}
		})
	}
}

// TestStepServicesThroughARelease: every step of a release, from the
// first, keeps the Services in sync.
func TestStepServicesThroughARelease(t *testing.T) {
	w := newWorld(t, weightedSpec())
	if out := w.step(time.Second); !slices.Contains(out.Actions, Action(EnsureServices{})) || !w.services {
		t.Fatalf("first step (phase %s): Services not made: %#v", w.status.Phase, out.Actions)
	}
	w.initialized()
	w.apply("v2")
	for w.status.Phase != v1alpha1.PhaseSucceeded {
		out := w.step(20 * time.Second)
		if !slices.Contains(out.Actions, Action(EnsureServices{})) {
			t.Fatalf("phase %s: step without EnsureServices: %#v", w.status.Phase, out.Actions)
		}
		if w.now.Sub(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)) > time.Hour {
			t.Fatal("release did not finish")
		}
	}
}
