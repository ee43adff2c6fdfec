package analysis

import (
	"math"
)

// ErrorCounts are both tracks' completed requests and failures over one
// window. They may be fractional (Prometheus extrapolates).
type ErrorCounts struct {
	CanaryRequests, CanaryErrors float64
	StableRequests, StableErrors float64
}

// Add sums two windows' counts.
func (c ErrorCounts) Add(o ErrorCounts) ErrorCounts {
	return ErrorCounts{c.CanaryRequests + o.CanaryRequests, c.CanaryErrors + o.CanaryErrors,
		c.StableRequests + o.StableRequests, c.StableErrors + o.StableErrors}
}

// Decision is the outcome of the sequential test.
type Decision int

// Decisions.
const (
	// Undecided: not enough evidence either way.
	Undecided Decision = iota
	// CanaryWorse: the canary's error rate exceeds stable's by more than
	// the tolerance, decisively.
	CanaryWorse
	// CanaryNoWorse: the canary's error rate is below stable's plus the
	// tolerance, decisively.
	CanaryNoWorse
	// NoTraffic: the canary completed no requests.
	NoTraffic
)

// Sequential is the state of the sequential test, all derived from the
// cumulative counts it was given.
type Sequential struct {
	Decision Decision
	// CanaryRate and StableRate are the observed error fractions.
	CanaryRate, StableRate float64
	// Above is set when the canary's observed rate is above stable's plus
	// the tolerance.
	Above bool
	// LogWorse is the log of the evidence that the canary is worse (an
	// e-value against "canary no worse than stable + tolerance");
	// LogNoWorse the log of the evidence that it is not (an e-value against
	// "canary worse by at least the tolerance").
	LogWorse, LogNoWorse float64
	// LogThreshold is log(1/falseRollbackRate): either evidence at or above
	// it is decisive.
	LogThreshold float64
	// NoStable is set when stable completed no requests: nothing to compare
	// against, so the test cannot decide.
	NoStable bool
}

// SequentialTest compares the canary's error rate p_c with stable's p_s,
// given cumulative counts of the whole window the release has been
// scored on, a false-rollback bound alpha and a tolerance delta (both as
// fractions: 0.01 and 0.01 for 1 % and 1 percentage point).
//
// The evidence that the canary is worse is the e-value
//
//	E = M / sup{ L(p_c, p_s) : p_c <= p_s + delta }
//
// where L is the two binomial likelihoods and M their mixture under
// independent Jeffreys priors, Beta(1/2, 1/2) — closed form in Beta
// functions of the counts. For every (p_c, p_s) in the null, M/L is a
// martingale in the requests observed, and the denominator is at least
// the true L, so by Ville's inequality
//
//	P(E ever reaches 1/alpha | canary no worse) <= alpha
//
// however often the counts are looked at, and with no state beyond the
// counts: a restarted controller that recomputes E from the same window
// gets the same answer. The evidence that the canary is no worse is the
// same construction against {p_c >= p_s + delta}; it bounds the chance of
// an early promotion of a canary worse by the tolerance by the same
// alpha. The bound assumes requests fail independently with a fixed rate
// per track; bursts of correlated failures weaken it.
func SequentialTest(c ErrorCounts, alpha, delta float64) Sequential {
	s := Sequential{LogThreshold: math.Log(1 / alpha)}
	if c.CanaryRequests <= 0 {
		s.Decision = NoTraffic
		return s
	}
	nc, xc := c.CanaryRequests, clamp(c.CanaryErrors, 0, c.CanaryRequests)
	ns, xs := max(c.StableRequests, 0), clamp(c.StableErrors, 0, max(c.StableRequests, 0))
	s.CanaryRate = xc / nc
	if ns == 0 {
		s.NoStable = true
		return s
	}
	s.StableRate = xs / ns
	s.Above = s.CanaryRate > s.StableRate+delta

	logMix := logJeffreysMarginal(xc, nc) + logJeffreysMarginal(xs, ns)
	logMLE := logLik(s.CanaryRate, xc, nc) + logLik(s.StableRate, xs, ns)
	logBoundary := maxOnBoundary(xc, nc, xs, ns, delta)
	if s.Above {
		s.LogWorse = logMix - logBoundary
		s.LogNoWorse = logMix - logMLE
	} else {
		s.LogWorse = logMix - logMLE
		s.LogNoWorse = logMix - logBoundary
	}
	switch {
	case s.LogWorse >= s.LogThreshold:
		s.Decision = CanaryWorse
	case s.LogNoWorse >= s.LogThreshold:
		s.Decision = CanaryNoWorse
	}
	return s
}

// logJeffreysMarginal is log ∫ p^x (1-p)^(n-x) Beta(p; 1/2, 1/2) dp.
func logJeffreysMarginal(x, n float64) float64 {
	return logBeta(x+0.5, n-x+0.5) - logBeta(0.5, 0.5)
}

func logBeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// logLik is x·log p + (n-x)·log(1-p), with 0·log 0 = 0.
func logLik(p, x, n float64) float64 {
	return xlogy(x, p) + xlogy(n-x, 1-p)
}

func xlogy(x, y float64) float64 {
	if x == 0 {
		return 0
	}
	if y <= 0 {
		return math.Inf(-1)
	}
	return x * math.Log(y)
}

// maxOnBoundary maximises the log-likelihood on the line p_c = p_s + delta,
// p_s in [0, 1-delta]. The function is concave in p_s, so its derivative
// falls monotonically and a bisection on the derivative's sign finds the
// maximum; the end points are checked as well.
func maxOnBoundary(xc, nc, xs, ns, delta float64) float64 {
	g := func(ps float64) float64 { return logLik(ps+delta, xc, nc) + logLik(ps, xs, ns) }
	slope := func(ps float64) float64 {
		pc := ps + delta
		return xc/pc - (nc-xc)/(1-pc) + xs/ps - (ns-xs)/(1-ps)
	}
	lo, hi := 0.0, 1-delta
	best := max(g(lo), g(hi))
	for range 100 {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if slope(mid) > 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return max(best, g(lo), g(hi))
}

func clamp(v, lo, hi float64) float64 { return min(max(v, lo), hi) }
