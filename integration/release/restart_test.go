package release

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/harness"
)

// trial is one kill of serin in the middle of a release.
type trial struct {
	killedAt  time.Time
	status    record // the last status the test saw before the kill
	ready     time.Duration
	firstEDS  time.Duration // from the restart to the observer's first EDS
	firstSeen seen
}

// TestRestartSafety kills serin (SIGKILL) at random moments of long
// releases (13 steps from 2 to 50, interval 1s), also right when they
// promote or finalise, and checks after every restart that the release
// resumed from status: phase and weight never went back, and the data
// plane (a raw ADS observer that reconnects after each kill) never saw a
// weight that status did not hold. Every other release (the first one
// included) is a change of a ConfigMap the Deployment reads rather than
// of its template. SERIN_RESTART_TRIALS sets the number of kills (default
// 20) for a longer benchmark run; the FIGURE lines give the restart times.
func TestRestartSafety(t *testing.T) {
	n := 20
	if v := os.Getenv("SERIN_RESTART_TRIALS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("SERIN_RESTART_TRIALS=%q", v)
		}
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 42))
	t.Logf("seed %d, %d trials", seed, n)

	e := newEnv(t, 3*time.Minute+time.Duration(n)*6*time.Second, harness.Options{})
	w := e.watchCanary()
	var steps []int32
	for s := int32(2); s <= 50; s += 4 {
		steps = append(steps, s)
	}
	a := app{Version: "7.0.0", EnvConfigMap: "podinfo-env"}
	e.apply(configMap(e.ns, "podinfo-env", map[string]string{"CONFIG_VERSION": "0"}), canary(e.ns, v1alpha1.CanaryAnalysis{StepWeights: steps}), a.deployment(e.ns))
	e.waitFor(w, 0, time.Minute, "initialized", phaseIs(v1alpha1.PhaseInitialized))
	obs := observeEDS(t, e.s.XDSAddress(), "restart-observer", "serin/"+e.ns+"/podinfo/9999")
	conn := harness.XDSClient(t, e.s.XDSAddress(), "restart-client", "podinfo."+e.ns+":9999")
	harness.Send(e.ctx, conn, 10)

	var trials []trial
	releases, configReleases := 0, 0
	phases := map[v1alpha1.CanaryPhase]int{}
	for len(trials) < n {
		if cur := w.last(); cur.Phase == v1alpha1.PhaseSucceeded || cur.Phase == v1alpha1.PhaseInitialized {
			releases++
			from := w.len()
			if releases%2 == 1 {
				configReleases++
				e.apply(configMap(e.ns, "podinfo-env", map[string]string{"CONFIG_VERSION": strconv.Itoa(releases)}))
			} else {
				a.Version = fmt.Sprintf("7.0.%d", releases)
				e.apply(a.deployment(e.ns))
			}
			e.waitFor(w, from, 30*time.Second, "release started", phaseIs(v1alpha1.PhaseProgressing))
		}
		// Kill at a random moment, or, near the end of a release, right
		// when it promotes or finalises.
		if cur := w.last(); cur.Phase == v1alpha1.PhaseProgressing && cur.Weight >= 42 {
			want := v1alpha1.PhasePromoting
			if rng.IntN(2) == 0 {
				want = v1alpha1.PhaseFinalising
			}
			e.waitFor(w, w.len()-1, time.Minute, string(want), func(r record) bool {
				return r.Phase == want || r.Phase == v1alpha1.PhaseSucceeded
			})
		} else {
			time.Sleep(time.Duration(50+rng.IntN(1500)) * time.Millisecond)
		}
		e.s.Kill()
		tr := trial{killedAt: time.Now(), status: w.last()}
		phases[tr.status.Phase]++
		streams := len(obs.all())
		lastConn := 0
		if s, ok := obs.last(); ok {
			lastConn = s.Conn
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		start := time.Now()
		if err := e.s.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		tr.ready = time.Since(start)
		// The observer's first answer from the new process.
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := obs.all()[streams:]
			i := slices.IndexFunc(got, func(s seen) bool { return s.Conn > lastConn })
			if i >= 0 {
				tr.firstSeen = got[i]
				tr.firstEDS = got[i].At.Sub(start)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("trial %d: the observer got nothing from the restarted serin", len(trials)+1)
			}
			time.Sleep(5 * time.Millisecond)
		}
		trials = append(trials, tr)
		t.Logf("trial %d: killed at %s; ready after %s; first EDS weight %d after %s",
			len(trials), tr.status, tr.ready.Round(time.Millisecond), tr.firstSeen.Weight, tr.firstEDS.Round(time.Millisecond))
	}
	// Let the last release finish.
	e.waitFor(w, 0, 2*time.Minute, "last release done", func(r record) bool {
		return r.Phase == v1alpha1.PhaseSucceeded && r.StableRevision == e.deploymentObj("podinfo").Annotations[v1alpha1.AnnotationCandidateRevision]
	})
	time.Sleep(500 * time.Millisecond)

	history, dp := w.all(), obs.all()
	checkStatusHistory(t, history)
	checkDataPlane(t, history, dp)
	for i, tr := range trials {
		if !heldAround(history, tr.firstSeen.Weight, tr.firstSeen.At) {
			t.Errorf("trial %d: the restarted serin first served weight %d, which status did not hold (status at kill %s)", i+1, tr.firstSeen.Weight, tr.status)
		}
	}

	var ready, eds []time.Duration
	for _, tr := range trials {
		ready = append(ready, tr.ready)
		eds = append(eds, tr.firstEDS)
	}
	t.Logf("kills by phase: %v over %d releases (%d of them config changes); %d status records, %d EDS responses seen", phases, releases, configReleases, len(history), len(dp))
	if configReleases == 0 {
		t.Error("no config release ran")
	}
	if phases[v1alpha1.PhasePromoting]+phases[v1alpha1.PhaseFinalising] == 0 {
		t.Error("no kill landed while promoting or finalising")
	}
	t.Logf("FIGURE restart_trials=%d", len(trials))
	t.Logf("FIGURE restart_to_ready_p50_ms=%d", pct(ready, 50).Milliseconds())
	t.Logf("FIGURE restart_to_ready_p99_ms=%d", pct(ready, 99).Milliseconds())
	t.Logf("FIGURE restart_to_first_eds_p50_ms=%d", pct(eds, 50).Milliseconds())
	t.Logf("FIGURE restart_to_first_eds_p99_ms=%d", pct(eds, 99).Milliseconds())
}

// phaseRank orders the phases of one release.
var phaseRank = map[v1alpha1.CanaryPhase]int{
	v1alpha1.PhaseInitialized: 0, v1alpha1.PhaseSucceeded: 0,
	v1alpha1.PhaseProgressing: 1, v1alpha1.PhasePromoting: 2, v1alpha1.PhaseFinalising: 3,
}

// checkStatusHistory checks that every release only moved forward: phases
// Progressing → Promoting → Finalising → Succeeded, weights never lower
// while progressing and promoting, and 0 once finalising.
func checkStatusHistory(t *testing.T, h []record) {
	t.Helper()
	// From the first Initialized on (before it, the Canary is created).
	first := slices.IndexFunc(h, phaseIs(v1alpha1.PhaseInitialized))
	if first < 0 {
		t.Fatal("never initialized")
	}
	for i := first + 1; i < len(h); i++ {
		a, b := h[i-1], h[i]
		ra, okA := phaseRank[a.Phase]
		rb, okB := phaseRank[b.Phase]
		if !okA || !okB {
			t.Errorf("status went %s → %s", a, b)
			continue
		}
		switch {
		case ra == 0 && rb <= 1:
		case ra > 0 && rb == 0 && ra == 3:
			// Finalising → Succeeded.
		case ra > 0 && rb >= ra && a.CanaryRevision == b.CanaryRevision:
		default:
			t.Errorf("status went back: %s → %s", a, b)
		}
		if ra >= 1 && ra <= 2 && rb >= 1 && rb <= 2 && b.Weight < a.Weight {
			t.Errorf("weight went back mid-release: %s → %s", a, b)
		}
		if rb == 3 && b.Weight != 0 {
			t.Errorf("finalising with weight %d: %s", b.Weight, b)
		}
	}
}

// heldAround reports whether status held weight w around time at: from
// half a second after at (the test's watch may lag serin's write) back to
// two seconds before (the data plane may lag status).
func heldAround(h []record, w int32, at time.Time) bool {
	for i, r := range h {
		if r.Weight != w || r.At.After(at.Add(500*time.Millisecond)) {
			continue
		}
		if i+1 == len(h) || !h[i+1].At.Before(at.Add(-2*time.Second)) {
			return true
		}
	}
	return false
}

// checkDataPlane checks every EDS response the observer received: the
// resource was there, its canary weight was one status held at the time,
// and weights only went down when a release finalised.
func checkDataPlane(t *testing.T, h []record, dp []seen) {
	t.Helper()
	if len(dp) == 0 {
		t.Fatal("the observer saw nothing")
	}
	var prev *seen
	for i := range dp {
		s := dp[i]
		if s.Missing {
			t.Errorf("EDS response without the release's resource at %s", s.At.Format("15:04:05.000"))
			continue
		}
		if s.Weight+s.Stable != 100 {
			t.Errorf("EDS weights canary %d + stable %d ≠ 100 at %s", s.Weight, s.Stable, s.At.Format("15:04:05.000"))
		}
		if !heldAround(h, s.Weight, s.At) {
			t.Errorf("data plane got weight %d at %s (stream %d), which status did not hold then; status around it:\n%s",
				s.Weight, s.At.Format("15:04:05.000"), s.Conn, around(h, s.At))
		}
		if prev != nil && s.Weight < prev.Weight {
			ok := s.Weight == 0 && slices.ContainsFunc(h, func(r record) bool {
				return r.Phase == v1alpha1.PhaseFinalising && r.At.After(prev.At.Add(-500*time.Millisecond)) && r.At.Before(s.At.Add(500*time.Millisecond))
			})
			if !ok {
				t.Errorf("data plane weight went back from %d to %d at %s (stream %d → %d); status around it:\n%s",
					prev.Weight, s.Weight, s.At.Format("15:04:05.000"), prev.Conn, s.Conn, around(h, s.At))
			}
		}
		prev = &dp[i]
	}
}

func around(h []record, at time.Time) string {
	var lines []string
	for _, r := range h {
		if r.At.After(at.Add(-3*time.Second)) && r.At.Before(at.Add(time.Second)) {
			lines = append(lines, "  "+r.String())
		}
	}
	return strings.Join(lines, "\n")
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}
