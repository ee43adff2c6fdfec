package release

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/harness"
)

// testReleasePromoted runs a release end to end: v1 on 3 replicas,
// `kubectl apply` of v2, the canary copy, weights 10 to 50 each confirmed
// by the data plane and measured by a grpc-go xDS client, promotion, and
// the user's Deployment on v2 with `kubectl rollout status` returning only
// then.
func testReleasePromoted(t *testing.T, s *harness.Serin) {
	e := newEnvWith(t, 3*time.Minute, s)
	w := e.watchCanary()
	e.apply(canary(e.ns, v1alpha1.CanaryAnalysis{StepWeight: 10, MaxWeight: 50}), app{Version: "6.0.0"}.deployment(e.ns))
	e.waitFor(w, 0, time.Minute, "release initialized", phaseIs(v1alpha1.PhaseInitialized))

	conn := harness.XDSClient(t, e.s.XDSAddress(), "promotion", "podinfo."+e.ns+":9999")
	// A second client sends traffic all along: no request may fail while
	// pods move between the tracks.
	bg := harness.XDSClient(t, e.s.XDSAddress(), "promotion-background", "podinfo."+e.ns+":9999")
	bgDone, bgStop := make(chan harness.Tally, 1), make(chan struct{})
	bgCtx, bgCancel := context.WithCancel(e.ctx)
	t.Cleanup(bgCancel)
	go func() {
		total := harness.Tally{Versions: map[string]int{}}
		for {
			select {
			case <-bgStop:
				bgDone <- total
				return
			case <-bgCtx.Done():
				bgDone <- total
				return
			default:
			}
			tl := harness.Send(bgCtx, bg, 16)
			time.Sleep(20 * time.Millisecond)
			for v, n := range tl.Versions {
				total.Versions[v] += n
			}
			total.Errors += tl.Errors
			if tl.LastErr != nil {
				total.LastErr = tl.LastErr
			}
		}
	}()
	v1Pods := podNames(e.pods("app=podinfo"))
	if len(v1Pods) != 3 {
		t.Fatalf("v1 pods: %v", v1Pods)
	}
	tally := harness.Send(e.ctx, conn, 200)
	if tally.Versions["6.0.0"] != 200 || tally.Errors > 0 {
		t.Fatalf("v1 traffic: %+v", tally)
	}
	for p := range tally.Pods {
		if !slices.Contains(v1Pods, p) {
			t.Fatalf("v1 traffic answered by %s, not a v1 pod %v", p, v1Pods)
		}
	}

	from := w.len()
	applied := time.Now()
	e.apply(app{Version: "6.0.1"}.deployment(e.ns))
	rollout := e.start(filepath.Join(e.c.BinDir, "kubectl"), "--kubeconfig="+e.c.Kubeconfig, "rollout", "status",
		"deployment/podinfo", "-n", e.ns, "--timeout=2m")

	// The webhook held v2: the Deployment is paused on the template the
	// user applied, with the candidate recorded.
	d := e.deploymentObj("podinfo")
	if !d.Spec.Paused || d.Spec.Template.Spec.Containers[0].Image != "ghcr.io/stefanprodan/podinfo:6.0.1" ||
		d.Annotations[v1alpha1.AnnotationCandidateRevision] != v1alpha1.TemplateHash(&d.Spec.Template) {
		t.Fatalf("v2 not held: paused=%v image=%s annotations=%v", d.Spec.Paused, d.Spec.Template.Spec.Containers[0].Image, d.Annotations)
	}
	v2 := d.Annotations[v1alpha1.AnnotationCandidateRevision]

	// The canary copy runs v2 pods that answer.
	e.waitFor(w, from, 30*time.Second, "release progressing", func(r record) bool {
		return r.Phase == v1alpha1.PhaseProgressing && r.CanaryRevision == v2
	})
	e.eventually(30*time.Second, "canary copy with ready v2 pods", func() (bool, string) {
		cp := e.deploymentObj("podinfo-canary")
		if cp == nil {
			return false, "no copy"
		}
		pods := e.pods("app=podinfo-canary,serin.dev/track=canary")
		if cp.Status.ReadyReplicas < 1 || len(pods) == 0 {
			return false, fmt.Sprintf("copy ready %d, pods %d", cp.Status.ReadyReplicas, len(pods))
		}
		for _, p := range pods {
			if podVersion(p) != "6.0.1" {
				return false, "copy pod " + p.Name + " runs " + podVersion(p)
			}
		}
		return true, ""
	})

	// Every weight is ACKed by the data plane before the next, and the
	// grpc-go client sees the canary at a share consistent with it (with
	// the weights in force during the measurement: a slow run may cross
	// into the next step).
	checked := 0
	for want := int32(10); want <= 50; want += 10 {
		r, i := e.waitFor(w, from, 30*time.Second, fmt.Sprintf("weight %d applied", want), func(r record) bool {
			return r.Phase == v1alpha1.PhaseProgressing && r.Weight == want && r.appliedWeight()
		})
		if !strings.HasPrefix(r.Applied.Message, "2 proxies") {
			t.Fatalf("weight %d: TrafficApplied counted the wrong proxies: %q", want, r.Applied.Message)
		}
		tally := harness.Send(e.ctx, conn, 200)
		window := w.since(i)
		lo, hi, progressing := weightRange(window, time.Now())
		share := 100 * float64(tally.Versions["6.0.1"]) / float64(max(1, tally.Versions["6.0.1"]+tally.Versions["6.0.0"]))
		t.Logf("weight %d (in force during the measurement: %d..%d): canary share %.1f%% %+v", want, lo, hi, share, tally.Versions)
		if tally.Errors > 0 || tally.Versions["6.0.1"]+tally.Versions["6.0.0"] != 200 {
			t.Fatalf("weight %d: %+v", want, tally)
		}
		if !progressing {
			t.Logf("weight %d: promotion began during the measurement; share not checked", want)
			continue
		}
		if rollout.exited() {
			t.Fatalf("kubectl rollout status returned at weight %d, before promotion: %s", want, rollout.out.String())
		}
		if share == 0 || share < float64(lo)-15 || share > float64(hi)+15 {
			t.Fatalf("weight %d: canary share %.1f%% not consistent with weights %d..%d: %+v", want, share, lo, hi, tally)
		}
		checked++
	}
	if checked < 3 {
		t.Fatalf("the canary share was checked at %d weights only", checked)
	}

	promoting, _ := e.waitFor(w, from, 30*time.Second, "promoting", phaseIs(v1alpha1.PhasePromoting))
	done, _ := e.waitFor(w, from, 60*time.Second, "succeeded", phaseIs(v1alpha1.PhaseSucceeded))
	t.Logf("FIGURE promotion_apply_to_succeeded_seconds=%.1f", done.At.Sub(applied).Seconds())

	// Weights in status went 10, 20, ... 50, then 100 (the copy serves
	// while the Deployment rolls out), and back to 0 only when promotion
	// was complete.
	var seq []int32
	for _, r := range w.since(from) {
		if len(seq) == 0 || seq[len(seq)-1] != r.Weight {
			seq = append(seq, r.Weight)
		}
	}
	if !slices.Equal(seq, []int32{0, 10, 20, 30, 40, 50, 100, 0}) {
		t.Fatalf("status weights %v, want 0 10 20 30 40 50 100 0", seq)
	}
	// Phases in order; Finalising (weight 0 sent, waiting for the ACK
	// before the copy goes) is a status of its own.
	var phases []v1alpha1.CanaryPhase
	for _, r := range w.since(from) {
		if len(phases) == 0 && r.Phase == v1alpha1.PhaseInitialized {
			// Status written before the webhook's hold reached the engine.
			continue
		}
		if len(phases) == 0 || phases[len(phases)-1] != r.Phase {
			phases = append(phases, r.Phase)
		}
		if r.Phase == v1alpha1.PhaseFinalising && r.Weight != 0 {
			t.Fatalf("finalising with weight %d", r.Weight)
		}
	}
	if want := []v1alpha1.CanaryPhase{v1alpha1.PhaseProgressing, v1alpha1.PhasePromoting,
		v1alpha1.PhaseFinalising, v1alpha1.PhaseSucceeded}; !slices.Equal(phases, want) {
		t.Fatalf("phases %v, want %v", phases, want)
	}

	e.wait(rollout, "kubectl rollout status", time.Minute)
	if rollout.code != 0 {
		t.Fatalf("kubectl rollout status exited %d: %s", rollout.code, rollout.out.String())
	}
	if rollout.end.Before(promoting.At) {
		t.Fatalf("kubectl rollout status returned at %s, before promotion began at %s", rollout.end.Format(time.RFC3339Nano), promoting.At.Format(time.RFC3339Nano))
	}

	c := e.canaryObj()
	if !metav1IsTrue(c, v1alpha1.ConditionPromoted) || c.Status.Phase != v1alpha1.PhaseSucceeded || c.Status.StableRevision != v2 || c.Status.CanaryWeight != 0 {
		t.Fatalf("final status: %+v", c.Status)
	}
	d = e.deploymentObj("podinfo")
	if d.Spec.Paused || d.Status.UpdatedReplicas != 3 || d.Status.AvailableReplicas != 3 {
		t.Fatalf("deployment after promotion: paused=%v status=%+v", d.Spec.Paused, d.Status)
	}
	e.copyGone(30 * time.Second)
	close(bgStop)
	bgTally := <-bgDone
	t.Logf("background traffic during the release: %+v", bgTally)
	if bgTally.Errors > 0 || bgTally.Versions["6.0.1"] == 0 {
		t.Fatalf("background traffic during the release: %+v", bgTally)
	}
	pods := e.pods("app=podinfo")
	v2Pods := podNames(pods)
	for _, p := range pods {
		if podVersion(p) != "6.0.1" || slices.Contains(v1Pods, p.Name) {
			t.Fatalf("after promotion pod %s runs %s", p.Name, podVersion(p))
		}
	}
	tally = harness.Send(e.ctx, conn, 300)
	if tally.Versions["6.0.1"] != 300 || tally.Errors > 0 {
		t.Fatalf("traffic after promotion: %+v", tally)
	}
	for p := range tally.Pods {
		if !slices.Contains(v2Pods, p) {
			t.Fatalf("after promotion %s answered; the Deployment's pods are %v", p, v2Pods)
		}
	}

	target := "podinfo." + e.ns
	want := []string{"New revision detected! Scaling up " + target, "Starting canary analysis for " + target}
	for wt := 10; wt <= 50; wt += 10 {
		want = append(want, fmt.Sprintf("Advance %s canary weight %d", target, wt))
	}
	want = append(want, "Copying "+target+" template spec", "Routing all traffic to primary "+target, "Promotion completed! Scaling down "+target)
	var events []string
	e.eventually(20*time.Second, "release events in order", func() (bool, string) {
		events = e.canaryEvents()
		missing, ok := inOrder(events, want)
		return ok, fmt.Sprintf("missing %q in\n%s", missing, strings.Join(events, "\n"))
	})
	for _, ev := range events {
		if strings.Contains(ev, "(series") {
			t.Errorf("release event folded into a series: %s", ev)
		}
	}
}

func podNames(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

// weightRange is the lowest and highest weight in force from the first
// record to until, and whether the release was progressing all along.
func weightRange(recs []record, until time.Time) (lo, hi int32, progressing bool) {
	lo, hi, progressing = recs[0].Weight, recs[0].Weight, true
	for _, r := range recs {
		if r.At.After(until) {
			break
		}
		lo, hi = min(lo, r.Weight), max(hi, r.Weight)
		progressing = progressing && r.Phase == v1alpha1.PhaseProgressing
	}
	return lo, hi, progressing
}

func metav1IsTrue(c *v1alpha1.Canary, typ string) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == typ {
			return cond.Status == metav1.ConditionTrue
		}
	}
	return false
}
