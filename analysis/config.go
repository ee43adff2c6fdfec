package analysis

import (
	"fmt"
	"strconv"
	"time"

	"github.com/serin-dev/serin/api/querytemplate"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// DefaultLatencyTolerance is the accepted p99 increase when the spec sets
// none: 20 % of stable's p99. (The other defaults are v1alpha1's.)
const DefaultLatencyTolerance = 0.2

// JudgeConfig is a parsed v1alpha1.Judge, fractions rather than strings.
type JudgeConfig struct {
	Kind              v1alpha1.JudgeKind
	FalseRollbackRate float64
	Tolerance         float64
	LatencyTolerance  float64
	EarlyPromotion    bool
}

// ParseJudge reads a Judge spec (nil is the default threshold judge) and
// checks its values as v1alpha1's validation does: falseRollbackRate in
// (0, 0.5), tolerance (percentage points) in [0, 100], latencyTolerance
// (percent) at least 0. Empty fields take v1alpha1's defaults.
func ParseJudge(j *v1alpha1.Judge) (JudgeConfig, error) {
	c := JudgeConfig{Kind: v1alpha1.JudgeThreshold, LatencyTolerance: DefaultLatencyTolerance}
	c.FalseRollbackRate, _ = strconv.ParseFloat(v1alpha1.DefaultFalseRollbackRate, 64)
	tol, _ := strconv.ParseFloat(v1alpha1.DefaultTolerance, 64)
	c.Tolerance = tol / 100
	if j == nil {
		return c, nil
	}
	switch j.Kind {
	case "":
	case v1alpha1.JudgeThreshold, v1alpha1.JudgeComparative:
		c.Kind = j.Kind
	default:
		return c, fmt.Errorf("judge.kind %q is not Threshold or Comparative", j.Kind)
	}
	c.EarlyPromotion = j.EarlyPromotion
	var err error
	if j.FalseRollbackRate != "" {
		if c.FalseRollbackRate, err = strconv.ParseFloat(j.FalseRollbackRate, 64); err != nil || !(c.FalseRollbackRate > 0 && c.FalseRollbackRate < 0.5) {
			return c, fmt.Errorf("judge.falseRollbackRate %q must be a number in (0, 0.5)", j.FalseRollbackRate)
		}
	}
	if j.Tolerance != "" {
		t, err := strconv.ParseFloat(j.Tolerance, 64)
		if err != nil || !(t >= 0 && t <= 100) {
			return c, fmt.Errorf("judge.tolerance %q must be percentage points in [0, 100]", j.Tolerance)
		}
		c.Tolerance = t / 100
	}
	if j.LatencyTolerance != "" {
		t, err := strconv.ParseFloat(j.LatencyTolerance, 64)
		if err != nil || !(t >= 0 && t <= 1e6) {
			return c, fmt.Errorf("judge.latencyTolerance %q must be a percentage of at least 0", j.LatencyTolerance)
		}
		c.LatencyTolerance = t / 100
	}
	return c, nil
}

// Interval is the analysis interval of a spec (default
// v1alpha1.DefaultInterval).
func Interval(a *v1alpha1.CanaryAnalysis) (time.Duration, error) {
	iv := v1alpha1.DefaultInterval
	if a != nil && a.Interval != "" {
		iv = a.Interval
	}
	d, err := querytemplate.ParseDuration(iv)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("analysis.interval %q is not a positive duration", iv)
	}
	return d, nil
}

// MetricInterval is a metric's query window: its own interval, or the
// analysis interval.
func MetricInterval(a *v1alpha1.CanaryAnalysis, m v1alpha1.CanaryMetric) (time.Duration, error) {
	if m.Interval == "" {
		return Interval(a)
	}
	d, err := querytemplate.ParseDuration(m.Interval)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("metric %s interval %q is not a positive duration", m.Name, m.Interval)
	}
	return d, nil
}
