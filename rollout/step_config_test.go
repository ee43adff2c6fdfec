package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// withConfigHash is the world's revision of a template (base) carrying a
// config annotation.
func withConfigHash(base, config string) string {
	if config == "" {
		return base
	}
	return base + "+" + config
}

// setConfig writes the annotation as the reconciler does: the hold, or
// the adoption, in the same write.
func (w *world) setConfig(a SetConfig) {
	base := w.target.BaseHash
	if base == "" {
		base = w.target.TemplateHash
	}
	hash := withConfigHash(base, a.Value)
	w.target.Config, w.target.BaseHash, w.target.TemplateHash = a.Value, base, hash
	switch {
	case a.Adopt || hash == a.Stable:
		w.target.Candidate, w.target.Stable = hash, hash
		w.target.RolledOut = !w.target.Paused
	default:
		w.target.Candidate, w.target.Stable, w.target.Paused = hash, a.Stable, true
		w.target.RolledOut = true
	}
}

// content makes the tracked objects hold these revisions.
func (w *world) content(revs ...string) {
	w.config = Config{Known: true}
	for _, r := range revs {
		ref, hash, _ := strings.Cut(r, "=")
		kind, name, _ := strings.Cut(ref, "/")
		w.config.Tracked = append(w.config.Tracked, v1alpha1.ConfigRevision{ConfigRef: v1alpha1.ConfigRef{Kind: v1alpha1.ConfigKind(kind), Name: name}, Hash: hash})
	}
}

func (w *world) count(substr string) int {
	n := 0
	for _, e := range w.events {
		if strings.Contains(e, substr) {
			n++
		}
	}
	return n
}

func TestStepConfigAdoptedWithoutRelease(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.content("configmap/app=a1", "secret/db=s1")
	w.initialized()
	want := "configmap/app=a1,secret/db=s1"
	if w.target.Config != want || w.target.Paused || w.status.StableRevision != w.target.TemplateHash || w.status.StableConfig != want {
		t.Fatalf("after init: target %+v status stable %q config %q", w.target, w.status.StableRevision, w.status.StableConfig)
	}
	if w.count("New revision detected") != 0 || w.count("Tracking configmap/app, secret/db of podinfo.test") != 1 {
		t.Fatalf("events %q", w.events)
	}
	if len(w.status.TrackedConfig) != 2 {
		t.Fatalf("trackedConfig %+v", w.status.TrackedConfig)
	}
	// Nothing more happens while the content stays.
	for range 5 {
		if out := w.step(time.Minute); len(out.Actions) != 1 {
			t.Fatalf("idle actions %+v", out.Actions)
		}
	}
}

func TestStepConfigChangeIsARelease(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.content("configmap/app=a1")
	w.initialized()
	w.content("configmap/app=a2")
	w.run(100, 20*time.Second, w.phase(v1alpha1.PhaseSucceeded))
	if w.target.Config != "configmap/app=a2" || w.status.StableConfig != "configmap/app=a2" || w.target.Paused || w.copy.Exists {
		t.Fatalf("after promotion: target %+v status %+v", w.target, w.status)
	}
	w.hasEvents(t, "New revision detected! Scaling up podinfo.test (config changed: configmap/app)", "Advance podinfo.test canary weight 10",
		"Promotion completed! Scaling down podinfo.test")
}

func TestStepConfigRollbackKeepsStableContent(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.content("configmap/app=a1")
	w.initialized()
	stable := w.target.TemplateHash
	w.content("configmap/app=bad")
	w.verdict = func(*world) Verdict {
		return Verdict{Decision: Rollback, FailedCheck: true, Message: "Halt podinfo.test advancement success rate 10.00% < 99%"}
	}
	w.run(100, 20*time.Second, w.phase(v1alpha1.PhaseFailed))
	w.run(10, 20*time.Second, func() bool { return !w.copy.Exists })
	if w.status.StableConfig != "configmap/app=a1" || w.status.StableRevision != stable || !w.target.Paused || w.target.Config != "configmap/app=bad" {
		t.Fatalf("after rollback: target %+v status %+v", w.target, w.status)
	}
	if !strings.Contains(w.status.Message, "the stable pods keep the previous content of configmap/app") {
		t.Fatalf("message %q", w.status.Message)
	}
	// The failed content stays failed; fixing the object starts a new release.
	for range 3 {
		w.step(time.Minute)
	}
	if w.status.Phase != v1alpha1.PhaseFailed {
		t.Fatalf("phase %s", w.status.Phase)
	}
	w.verdict = func(*world) Verdict { return Verdict{Decision: Promote, Message: "all checks passed"} }
	w.content("configmap/app=a3")
	w.run(100, 20*time.Second, w.phase(v1alpha1.PhaseSucceeded))
	if w.status.StableConfig != "configmap/app=a3" {
		t.Fatalf("status %+v", w.status)
	}
	// Putting the old content back after a rollback ends the hold.
}

func TestStepConfigBackToStableEndsHold(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.content("configmap/app=a1")
	w.initialized()
	w.content("configmap/app=bad")
	w.verdict = func(*world) Verdict {
		return Verdict{Decision: Rollback, FailedCheck: true, Message: "Halt podinfo.test advancement"}
	}
	w.run(100, 20*time.Second, w.phase(v1alpha1.PhaseFailed))
	w.content("configmap/app=a1")
	w.run(10, 20*time.Second, func() bool { return !w.target.Paused })
	if w.target.TemplateHash != w.status.StableRevision || w.target.Config != "configmap/app=a1" {
		t.Fatalf("target %+v status %+v", w.target, w.status)
	}
}

func TestStepConfigAndTemplateTogetherAreOneRelease(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.content("configmap/app=a1")
	w.initialized()
	w.apply("v2")
	w.content("configmap/app=a2")
	w.run(100, 20*time.Second, w.phase(v1alpha1.PhaseSucceeded))
	if n := w.count("New revision detected"); n != 1 {
		t.Fatalf("%d releases started, want 1: %q", n, w.events)
	}
	if w.target.TemplateHash != withConfigHash("v2", "configmap/app=a2") || w.status.StableRevision != w.target.TemplateHash {
		t.Fatalf("target %+v status %+v", w.target, w.status)
	}
}

func TestStepConfigChangeMidReleaseRestarts(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.content("configmap/app=a1")
	w.initialized()
	w.content("configmap/app=a2")
	w.run(50, 20*time.Second, func() bool { return w.status.CanaryWeight == 20 })
	w.content("configmap/app=a3")
	w.run(100, 20*time.Second, w.phase(v1alpha1.PhaseSucceeded))
	w.hasEvents(t, "New revision detected! Restarting analysis for podinfo.test (config changed: configmap/app)", "Promotion completed!")
	if w.status.StableConfig != "configmap/app=a3" {
		t.Fatalf("status %+v", w.status)
	}
}

func TestStepConfigUnknownLeavesTemplate(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.initialized()
	w.config = Config{} // not tracked, or unreadable
	for range 5 {
		for _, a := range w.step(time.Minute).Actions {
			if _, ok := a.(SetConfig); ok {
				t.Fatalf("SetConfig without known config: %+v", a)
			}
		}
	}
}

func TestStepConfigReplaceDroppingAnnotationIsNoRelease(t *testing.T) {
	w := newWorld(t, weightedSpec())
	w.content("configmap/app=a1")
	w.initialized()
	stable := w.target.TemplateHash
	// kubectl replace of the template as applied: no serin.dev/config; the
	// hold webhook holds it as a new revision.
	w.target.Config = ""
	w.apply(w.target.BaseHash)
	if !w.target.Paused || w.target.Candidate == stable {
		t.Fatalf("not held: %+v", w.target)
	}
	w.run(10, time.Second, func() bool { return !w.target.Paused })
	if w.target.TemplateHash != stable || w.target.Config != "configmap/app=a1" || w.count("New revision detected") != 0 {
		t.Fatalf("target %+v events %q", w.target, w.events)
	}
}
