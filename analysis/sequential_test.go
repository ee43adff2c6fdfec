package analysis

import (
	"math"
	"testing"
)

func TestSequentialTest(t *testing.T) {
	tests := []struct {
		name     string
		c        ErrorCounts
		decision Decision
		above    bool
		noStable bool
	}{
		{name: "no canary traffic", c: ErrorCounts{StableRequests: 100}, decision: NoTraffic},
		{name: "no stable traffic", c: ErrorCounts{CanaryRequests: 50, CanaryErrors: 50}, decision: Undecided, above: false, noStable: true},
		{name: "30% vs 0% after 20 requests", c: ErrorCounts{20, 6, 180, 0}, decision: CanaryWorse, above: true},
		{name: "30% vs 0% after 10 requests is not yet decisive", c: ErrorCounts{10, 3, 90, 0}, decision: Undecided, above: true},
		{name: "equal rates, little data", c: ErrorCounts{1000, 5, 9000, 45}, decision: Undecided},
		{name: "equal rates, much data proves no worse", c: ErrorCounts{10000, 50, 90000, 450}, decision: CanaryNoWorse},
		{name: "within tolerance", c: ErrorCounts{100000, 1200, 900000, 4500}, decision: CanaryNoWorse},
		{name: "just over tolerance, lots of data", c: ErrorCounts{200000, 4000, 1800000, 9000}, decision: CanaryWorse, above: true},
		{name: "fractional counts", c: ErrorCounts{19.6, 5.9, 181.3, 0.4}, decision: CanaryWorse, above: true},
		{name: "errors above requests are clamped", c: ErrorCounts{10, 20, 10, 0}, decision: CanaryWorse, above: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := SequentialTest(tt.c, 0.01, 0.01)
			if s.Decision != tt.decision || s.Above != tt.above || s.NoStable != tt.noStable {
				t.Fatalf("SequentialTest(%+v) = %+v", tt.c, s)
			}
			if math.IsNaN(s.LogWorse) || math.IsNaN(s.LogNoWorse) {
				t.Fatalf("NaN evidence: %+v", s)
			}
		})
	}
}

// The evidence that the canary is worse grows with its errors, and a
// stricter bound needs more of it.
func TestSequentialMonotone(t *testing.T) {
	prev := math.Inf(-1)
	for x := 0.0; x <= 30; x++ {
		s := SequentialTest(ErrorCounts{100, x, 900, 5}, 0.01, 0.01)
		if s.LogWorse < prev-1e-9 {
			t.Fatalf("evidence fell from %v to %v at %v errors", prev, s.LogWorse, x)
		}
		prev = s.LogWorse
	}
	c := ErrorCounts{25, 6, 225, 1}
	if SequentialTest(c, 0.05, 0.01).Decision != CanaryWorse || SequentialTest(c, 1e-6, 0.01).Decision != Undecided {
		t.Fatal("falseRollbackRate does not set the evidence needed")
	}
	if SequentialTest(c, 0.01, 0.5).Above {
		t.Fatal("a 50pp tolerance should accept 24% errors")
	}
}

// The boundary maximisation must agree with a brute-force grid.
func TestMaxOnBoundary(t *testing.T) {
	cases := [][4]float64{{20, 6, 180, 0}, {1000, 5, 9000, 45}, {10, 10, 10, 0}, {5, 0, 100, 3}, {1e6, 3e4, 9e6, 1e4}}
	for _, delta := range []float64{0, 0.01, 0.2} {
		for _, c := range cases {
			got := maxOnBoundary(c[1], c[0], c[3], c[2], delta)
			want := math.Inf(-1)
			for i := 0; i <= 200000; i++ {
				ps := (1 - delta) * float64(i) / 200000
				want = max(want, logLik(ps+delta, c[1], c[0])+logLik(ps, c[3], c[2]))
			}
			if got < want-1e-6*math.Max(1, math.Abs(want)) {
				t.Errorf("maxOnBoundary(%v, δ=%v) = %v, grid finds %v", c, delta, got, want)
			}
		}
	}
}

func BenchmarkSequentialTest(b *testing.B) {
	c := ErrorCounts{CanaryRequests: 12345, CanaryErrors: 67, StableRequests: 111111, StableErrors: 555}
	for b.Loop() {
		SequentialTest(c, 0.01, 0.01)
	}
}
