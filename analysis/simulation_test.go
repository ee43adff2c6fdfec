package analysis

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// These simulations drive the real judges with synthetic traffic and print
// the figures quoted in the docs (go test -run Simulation -v). They are
// seeded, so the assertions are deterministic.

// traffic simulates one second of requests split by weight.
type traffic struct {
	rng                *rand.Rand
	rps                int
	canaryErr, stabErr float64
}

func (tr traffic) second(weight float64) ErrorCounts {
	var c ErrorCounts
	for range tr.rps {
		if tr.rng.Float64() < weight {
			c.CanaryRequests++
			if tr.rng.Float64() < tr.canaryErr {
				c.CanaryErrors++
			}
		} else {
			c.StableRequests++
			if tr.rng.Float64() < tr.stabErr {
				c.StableErrors++
			}
		}
	}
	return c
}

// comparativeRollbackTime is the first check (every cadence seconds) at
// which the comparative judge says Rollback, or -1 within limit seconds.
func comparativeRollbackTime(tr traffic, weight float64, cadence, limit int) int {
	var total ErrorCounts
	for s := 1; s <= limit; s++ {
		total = total.Add(tr.second(weight))
		if s%cadence != 0 {
			continue
		}
		r := Judge(Evidence{Target: "sim.test", Comparison: &Comparison{Release: total, Step: total,
			Source: SourceLoadReports, FalseRollbackRate: 0.01, Tolerance: 0.01, LatencyTolerance: 0.2}})
		if r.Verdict == Rollback {
			return s
		}
	}
	return -1
}

// thresholdRollbackTime runs Flagger's judge: a success-rate check (min
// 99 %) over each interval, rollback at `threshold` failed checks.
func thresholdRollbackTime(tr traffic, weight float64, interval, threshold, limit int) int {
	failed := 0
	var win ErrorCounts
	for s := 1; s <= limit; s++ {
		win = win.Add(tr.second(weight))
		if s%interval != 0 {
			continue
		}
		m := MetricValue{Name: v1alpha1.MetricRequestSuccessRate, Kind: KindSuccessRate, CanaryRequests: win.CanaryRequests,
			Canary: SuccessRate(win.CanaryRequests, win.CanaryErrors), Range: rng(ptr(99), nil)}
		if r := Judge(Evidence{Target: "sim.test", Metrics: []MetricValue{m}}); r.FailedCheck {
			failed++
			if failed >= threshold {
				return s
			}
		}
		win = ErrorCounts{}
	}
	return -1
}

type stats struct{ median, p90, p99, max, misses int }

func summarize(times []int) stats {
	var ok []int
	st := stats{}
	for _, t := range times {
		if t < 0 {
			st.misses++
			continue
		}
		ok = append(ok, t)
	}
	slices.Sort(ok)
	if len(ok) == 0 {
		return st
	}
	at := func(q float64) int { return ok[min(len(ok)-1, int(q*float64(len(ok))))] }
	st.median, st.p90, st.p99, st.max = at(0.5), at(0.9), at(0.99), ok[len(ok)-1]
	return st
}

func (s stats) String() string {
	return fmt.Sprintf("median %3ds  p90 %3ds  p99 %3ds  max %3ds  never %d", s.median, s.p90, s.p99, s.max, s.misses)
}

// Scenario (i): 10 RPS, a 10 % canary step, canary errors 30 %, stable
// 0 % or 0.5 %. Time from the first bad request to Rollback.
func TestSimulationTimeToRollback(t *testing.T) {
	runs, limit := 1000, 900
	if testing.Short() || raceEnabled {
		runs = 200
	}
	for _, stableErr := range []float64{0, 0.005} {
		for _, cadence := range []int{1, 5, 10} {
			r := rand.New(rand.NewPCG(1, uint64(cadence)))
			times := make([]int, runs)
			for i := range times {
				times[i] = comparativeRollbackTime(traffic{rng: r, rps: 10, canaryErr: 0.3, stabErr: stableErr}, 0.1, cadence, limit)
			}
			st := summarize(times)
			t.Logf("comparative (α=1%%, tolerance 1pp), stable errors %.1f%%, check every %2ds: %s", 100*stableErr, cadence, st)
			if cadence == 1 && st.median >= 30 {
				t.Errorf("median time to rollback %ds, want < 30s", st.median)
			}
			if st.misses > 0 {
				t.Errorf("%d runs never rolled back", st.misses)
			}
		}
		for _, iv := range []int{10, 60} {
			r := rand.New(rand.NewPCG(2, uint64(iv)))
			times := make([]int, runs)
			for i := range times {
				times[i] = thresholdRollbackTime(traffic{rng: r, rps: 10, canaryErr: 0.3, stabErr: stableErr}, 0.1, iv, 5, limit)
			}
			t.Logf("threshold (success rate min 99%%, interval %ds, threshold 5), stable errors %.1f%%: %s", iv, 100*stableErr, summarize(times))
		}
	}
}

// Scenario (ii): healthy releases (canary error rate = stable's) through
// weights 10..50 % by 10, one minute each, with a comparative check every
// second on the release's cumulative counts. A rollback is a false one.
func TestSimulationFalseRollbackRate(t *testing.T) {
	releases := 1000
	if testing.Short() || raceEnabled {
		releases = 100
	}
	const alpha, tolerance = 0.01, 0.01
	steps := []float64{0.1, 0.2, 0.3, 0.4, 0.5}
	const stepSeconds = 60
	scenarios := []struct {
		name          string
		rps           int
		stable, extra float64
	}{
		{"stable 0.1%, canary equal, 10 RPS", 10, 0.001, 0},
		{"stable 0.5%, canary equal, 10 RPS", 10, 0.005, 0},
		{"stable 1%, canary equal, 10 RPS", 10, 0.01, 0},
		{"stable 5%, canary equal, 10 RPS", 10, 0.05, 0},
		{"stable 1%, canary equal, 100 RPS", 100, 0.01, 0},
		{"stable 0.5%, canary at the tolerance (+1pp), 10 RPS", 10, 0.005, tolerance},
		{"stable 0.5%, canary at the tolerance (+1pp), 100 RPS", 100, 0.005, tolerance},
	}
	for i, sc := range scenarios {
		r := rand.New(rand.NewPCG(3, uint64(i)))
		falseRollbacks, thresholdRollbacks := 0, 0
		start := time.Now()
		for range releases {
			tr := traffic{rng: r, rps: sc.rps, canaryErr: sc.stable + sc.extra, stabErr: sc.stable}
			var total, window ErrorCounts
			failed, rolledBack, thresholdRolledBack := 0, false, false
			for s := 1; s <= len(steps)*stepSeconds; s++ {
				sec := tr.second(steps[(s-1)/stepSeconds])
				total, window = total.Add(sec), window.Add(sec)
				if !rolledBack && SequentialTest(total, alpha, tolerance).Decision == CanaryWorse {
					rolledBack = true
				}
				// Flagger's judge on the same traffic: success rate min 99 %
				// every 10 s, rollback at 5 failed checks.
				if s%10 == 0 {
					if v := SuccessRate(window.CanaryRequests, window.CanaryErrors); v.OK && v.V < 99 {
						failed++
					}
					thresholdRolledBack = thresholdRolledBack || failed >= 5
					window = ErrorCounts{}
				}
			}
			if rolledBack {
				falseRollbacks++
			}
			if thresholdRolledBack {
				thresholdRollbacks++
			}
		}
		rate := float64(falseRollbacks) / float64(releases)
		t.Logf("%-52s comparative rollbacks %4d/%d = %.2f%% (bound %.0f%%); threshold judge rollbacks %.1f%%  [%v]",
			sc.name, falseRollbacks, releases, 100*rate, 100*alpha, 100*float64(thresholdRollbacks)/float64(releases), time.Since(start).Round(time.Millisecond))
		if rate > alpha {
			t.Errorf("%s: false rollback rate %.2f%% above the %.0f%% bound", sc.name, 100*rate, 100*alpha)
		}
	}
}

// The other side of the bound: a moderate regression (stable 0.5 %,
// canary 3.5 %, three times the tolerance over it) is still caught, and
// how fast, through the same release as above.
func TestSimulationModerateRegression(t *testing.T) {
	releases := 1000
	if testing.Short() || raceEnabled {
		releases = 100
	}
	steps := []float64{0.1, 0.2, 0.3, 0.4, 0.5}
	for i, rps := range []int{10, 100} {
		r := rand.New(rand.NewPCG(4, uint64(i)))
		times := make([]int, releases)
		for k := range times {
			tr := traffic{rng: r, rps: rps, canaryErr: 0.035, stabErr: 0.005}
			times[k] = -1
			var total ErrorCounts
			for s := 1; s <= len(steps)*60; s++ {
				total = total.Add(tr.second(steps[(s-1)/60]))
				if SequentialTest(total, 0.01, 0.01).Decision == CanaryWorse {
					times[k] = s
					break
				}
			}
		}
		st := summarize(times)
		caught := float64(releases-st.misses) / float64(releases)
		t.Logf("canary 3.5%% vs stable 0.5%%, %3d RPS, weights 10..50%%: rolled back in %.1f%% of releases; %s", rps, 100*caught, st)
		if rps == 100 && caught < 0.99 {
			t.Errorf("only %.1f%% of clearly worse canaries rolled back at 100 RPS", 100*caught)
		}
	}
}

func BenchmarkJudgeComparative(b *testing.B) {
	ev := Evidence{Target: "a.b", Metrics: []MetricValue{successRate(99.5, 1000), duration(120)},
		Comparison: cmpWith(ErrorCounts{CanaryRequests: 12345, CanaryErrors: 67, StableRequests: 111111, StableErrors: 555})}
	for b.Loop() {
		Judge(ev)
	}
}
