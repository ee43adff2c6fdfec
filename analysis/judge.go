package analysis

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Comparative sample names.
const (
	SampleErrorRate         = "error-rate"
	SampleRollbackEvidence  = "rollback-evidence"
	SamplePromotionEvidence = "promotion-evidence"
	SampleLatency           = "latency-p99"
)

// LatencySlackMillis is the smallest p99 increase, in milliseconds, the
// comparative judge ever calls a regression: at a 2 ms p99 a relative
// tolerance alone would fail a canary for a 1 ms wobble.
const LatencySlackMillis = 5.0

// MinLatencyRequests is how many canary requests the step must have seen
// before the comparative judge compares p99 latencies.
const MinLatencyRequests = 50

// Value is one number; OK is false when there was no data.
type Value struct {
	V  float64
	OK bool
}

// MetricKind says how a metric is worded and what unit it has.
type MetricKind int

// Metric kinds.
const (
	// KindCustom is a MetricTemplate query: a plain number.
	KindCustom MetricKind = iota
	// KindSuccessRate is a percentage of non-failed requests.
	KindSuccessRate
	// KindDuration is a p99 in milliseconds.
	KindDuration
)

// MetricValue is one metric's sampled value for the step, ready to judge.
type MetricValue struct {
	Name string
	Kind MetricKind
	// Canary is the judged value.
	Canary Value
	// Stable is stable's value over the same window, shown for context.
	Stable *Value
	// CanaryRequests and StableRequests are the requests behind the
	// values, when known.
	CanaryRequests, StableRequests float64
	Range                          *v1alpha1.CanaryThresholdRange
	// Err is a failed query: a failed check.
	Err    error
	Source string
	Window time.Duration
}

// Comparison is the comparative judge's input: both tracks over the same
// windows.
type Comparison struct {
	// Release are the cumulative counts since the release began scoring
	// (the sequential test's whole state).
	Release ErrorCounts
	// Step are the counts since the current weight was applied; no canary
	// requests here is NoData.
	Step ErrorCounts
	// Source is where the counts came from.
	Source string
	// Window is the length of the release window.
	Window time.Duration
	// Err is a failed read of the counts: a failed check.
	Err error
	// LatencyCanary and LatencyStable are p99s in milliseconds over the
	// step window; either without data skips the latency comparison.
	LatencyCanary, LatencyStable Value
	// LatencyErr is a failed latency query: a failed check.
	LatencyErr error

	// FalseRollbackRate bounds false rollbacks (a fraction, e.g. 0.01).
	FalseRollbackRate float64
	// Tolerance is the accepted error-rate increase (a fraction: 0.01 is
	// one percentage point).
	Tolerance float64
	// LatencyTolerance is the accepted p99 increase (a fraction of
	// stable's p99: 0.2 is 20 %).
	LatencyTolerance float64
	EarlyPromotion   bool
}

// Evidence is everything a verdict is based on.
type Evidence struct {
	// Target names the release in messages: "podinfo.test".
	Target  string
	Metrics []MetricValue
	// Comparison is nil for the threshold judge.
	Comparison *Comparison
}

// Judge turns evidence into a verdict. It is a pure function.
//
// In order: decisive evidence that the canary is worse is Rollback; any
// metric outside its range, failed query or latency regression is a Hold
// with FailedCheck; no canary traffic (or a metric without data) is
// NoData; a canary whose observed error rate is above stable's plus the
// tolerance, but not yet decisively, is an inconclusive Hold; decisive
// evidence that the canary is no worse, with early promotion on, is an
// early Promote; anything else is Promote.
func Judge(e Evidence) Result {
	var (
		r         Result
		failed    []string
		noData    []string
		passed    []string
		noTraffic bool
	)
	for _, m := range e.Metrics {
		samples, outcome, text := judgeMetric(m)
		r.Samples = append(r.Samples, samples...)
		switch outcome {
		case Fail, Errored:
			failed = append(failed, text)
		case Missing:
			noData = append(noData, m.Name)
			if m.Kind == KindSuccessRate && m.CanaryRequests == 0 && m.Err == nil {
				noTraffic = true
			}
		case Pass:
			passed = append(passed, text)
		}
	}

	var seq Sequential
	var cmp *Comparison
	if e.Comparison != nil {
		cmp = e.Comparison
		var samples []Sample
		var cmpFailed []string
		samples, seq, cmpFailed = judgeComparison(*cmp)
		r.Samples = append(r.Samples, samples...)
		failed = append(failed, cmpFailed...)
		if cmp.Err == nil && cmp.Step.CanaryRequests <= 0 {
			noTraffic = true
			noData = append(noData, SampleErrorRate)
		}
	}

	switch {
	case cmp != nil && cmp.Err == nil && seq.Decision == CanaryWorse:
		r.Verdict = Rollback
		r.Message = fmt.Sprintf("Rolling back %s canary error rate %s > stable %s + %s (evidence %s >= %s, false rollback rate <= %s)",
			e.Target, pct(seq.CanaryRate), pct(seq.StableRate), pp(cmp.Tolerance), evidence(seq.LogWorse), evidence(seq.LogThreshold), pct(cmp.FalseRollbackRate))
	case len(failed) > 0:
		r.Verdict, r.FailedCheck = Hold, true
		r.Message = fmt.Sprintf("Halt %s advancement %s", e.Target, strings.Join(failed, ", "))
	case len(noData) > 0:
		r.Verdict = NoData
		reason := "the queries returned no data"
		if noTraffic {
			reason = "the canary received no traffic"
		}
		r.Message = fmt.Sprintf("Halt %s advancement no data for %s: %s", e.Target, strings.Join(dedupe(noData), ", "), reason)
	case cmp != nil && cmp.Err == nil && seq.Above:
		r.Verdict = Hold
		r.Message = fmt.Sprintf("Halt %s advancement canary error rate %s > stable %s + %s, not yet decisive (evidence %s < %s)",
			e.Target, pct(seq.CanaryRate), pct(seq.StableRate), pp(cmp.Tolerance), evidence(seq.LogWorse), evidence(seq.LogThreshold))
	case cmp != nil && cmp.Err == nil && cmp.EarlyPromotion && seq.Decision == CanaryNoWorse:
		r.Verdict, r.Early = Promote, true
		r.Message = fmt.Sprintf("Promote %s early: canary error rate %s is decisively within stable %s + %s (evidence %s >= %s)",
			e.Target, pct(seq.CanaryRate), pct(seq.StableRate), pp(cmp.Tolerance), evidence(seq.LogNoWorse), evidence(seq.LogThreshold))
	default:
		r.Verdict = Promote
		switch {
		case cmp == nil || cmp.Err != nil:
		case seq.NoStable:
			passed = append(passed, fmt.Sprintf("canary error rate %s (stable served no requests to compare with)", pct(seq.CanaryRate)))
		default:
			passed = append(passed, fmt.Sprintf("canary error rate %s <= stable %s + %s", pct(seq.CanaryRate), pct(seq.StableRate), pp(cmp.Tolerance)))
		}
		if len(passed) == 0 {
			r.Message = fmt.Sprintf("Check passed for %s: no metrics to check", e.Target)
		} else {
			r.Message = fmt.Sprintf("Check passed for %s: %s", e.Target, strings.Join(passed, ", "))
		}
	}
	return r
}

// judgeMetric judges one metric against its range and words the outcome
// the way Flagger does.
func judgeMetric(m MetricValue) ([]Sample, Outcome, string) {
	unit := ""
	switch m.Kind {
	case KindSuccessRate:
		unit = "%"
	case KindDuration:
		unit = "ms"
	}
	s := Sample{Metric: m.Name, Track: v1alpha1.TrackCanary, Value: m.Canary.V, Unit: unit, Requests: m.CanaryRequests, Source: m.Source, Window: m.Window}
	if m.Range != nil {
		s.Min, s.Max = m.Range.Min, m.Range.Max
	}
	var text string
	switch {
	case m.Err != nil:
		s.Outcome, s.Detail, s.Value = Errored, truncate(m.Err.Error(), 200), 0
		text = fmt.Sprintf("metric %s query failed: %s", m.Name, s.Detail)
	case !m.Canary.OK || math.IsNaN(m.Canary.V):
		s.Outcome, s.Value = Missing, 0
	case s.Min != nil && m.Canary.V < *s.Min:
		s.Outcome = Fail
		text = metricPhrase(m, "<", *s.Min)
	case s.Max != nil && m.Canary.V > *s.Max:
		s.Outcome = Fail
		text = metricPhrase(m, ">", *s.Max)
	default:
		s.Outcome = Pass
		switch {
		case s.Min != nil:
			text = metricPhrase(m, ">=", *s.Min)
		case s.Max != nil:
			text = metricPhrase(m, "<=", *s.Max)
		default:
			text = metricPhrase(m, "", 0)
		}
	}
	out := []Sample{s}
	if m.Stable != nil {
		st := Sample{Metric: m.Name, Track: v1alpha1.TrackStable, Value: m.Stable.V, Unit: unit, Requests: m.StableRequests, Outcome: Info, Source: m.Source, Window: m.Window}
		if !m.Stable.OK {
			st.Outcome, st.Value = Missing, 0
		}
		out = append(out, st)
	}
	return out, s.Outcome, text
}

// metricPhrase is Flagger's wording: "success rate 98.69% < 99%",
// "request duration 1.515s > 500ms", "my-metric 12.00 > 10".
func metricPhrase(m MetricValue, op string, bound float64) string {
	var v, b string
	switch m.Kind {
	case KindSuccessRate:
		v, b = fmt.Sprintf("success rate %.2f%%", m.Canary.V), fmt.Sprintf("%v%%", bound)
	case KindDuration:
		v, b = "request duration "+formatMillis(m.Canary.V), formatMillis(bound)
	default:
		v, b = fmt.Sprintf("%s %.2f", m.Name, m.Canary.V), fmt.Sprintf("%v", bound)
	}
	if op == "" {
		return v
	}
	return v + " " + op + " " + b
}

// judgeComparison runs the sequential test and the latency comparison.
func judgeComparison(c Comparison) ([]Sample, Sequential, []string) {
	var failed []string
	if c.Err != nil {
		d := truncate(c.Err.Error(), 200)
		return []Sample{{Metric: SampleErrorRate, Track: v1alpha1.TrackCanary, Outcome: Errored, Source: c.Source, Detail: d}},
			Sequential{}, []string{"canary-vs-stable error rates unavailable: " + d}
	}
	seq := SequentialTest(c.Release, c.FalseRollbackRate, c.Tolerance)
	canary := Sample{Metric: SampleErrorRate, Track: v1alpha1.TrackCanary, Value: 100 * seq.CanaryRate, Unit: "%",
		Requests: c.Release.CanaryRequests, Source: c.Source, Window: c.Window, Outcome: Pass}
	switch {
	case seq.Decision == NoTraffic:
		canary.Outcome, canary.Value = Missing, 0
	case seq.NoStable:
		canary.Outcome, canary.Detail = Info, "stable served no requests; nothing to compare"
	default:
		canary.Max = ptr(100 * (seq.StableRate + c.Tolerance))
		if seq.Above {
			canary.Outcome = Fail
		}
	}
	stable := Sample{Metric: SampleErrorRate, Track: v1alpha1.TrackStable, Value: 100 * seq.StableRate, Unit: "%",
		Requests: c.Release.StableRequests, Source: c.Source, Window: c.Window, Outcome: Info}
	out := []Sample{canary, stable}
	if seq.Decision != NoTraffic && !seq.NoStable {
		worse := Sample{Metric: SampleRollbackEvidence, Value: expCapped(seq.LogWorse), Max: ptr(expCapped(seq.LogThreshold)),
			Source: SourceJudge, Window: c.Window, Outcome: Pass}
		if seq.Decision == CanaryWorse {
			worse.Outcome = Fail
		}
		out = append(out, worse)
		if c.EarlyPromotion {
			better := Sample{Metric: SamplePromotionEvidence, Value: expCapped(seq.LogNoWorse), Min: ptr(expCapped(seq.LogThreshold)),
				Source: SourceJudge, Window: c.Window, Outcome: Info}
			if seq.Decision == CanaryNoWorse {
				better.Outcome = Pass
			}
			out = append(out, better)
		}
	}

	switch {
	case c.LatencyErr != nil:
		d := truncate(c.LatencyErr.Error(), 200)
		out = append(out, Sample{Metric: SampleLatency, Track: v1alpha1.TrackCanary, Unit: "ms", Outcome: Errored, Source: SourcePrometheus, Detail: d})
		failed = append(failed, "latency comparison query failed: "+d)
	case c.LatencyCanary.OK && c.LatencyStable.OK && c.Step.CanaryRequests < MinLatencyRequests:
		// A p99 of a handful of requests is one request's latency: noise.
		out = append(out, Sample{Metric: SampleLatency, Track: v1alpha1.TrackCanary, Value: c.LatencyCanary.V, Unit: "ms",
			Requests: c.Step.CanaryRequests, Source: SourcePrometheus, Outcome: Info,
			Detail: fmt.Sprintf("not compared: fewer than %d canary requests in the step", MinLatencyRequests)})
	case c.LatencyCanary.OK && c.LatencyStable.OK:
		limit := max(c.LatencyStable.V*(1+c.LatencyTolerance), c.LatencyStable.V+LatencySlackMillis)
		s := Sample{Metric: SampleLatency, Track: v1alpha1.TrackCanary, Value: c.LatencyCanary.V, Unit: "ms", Max: ptr(limit), Source: SourcePrometheus, Outcome: Pass}
		if c.LatencyCanary.V > limit {
			s.Outcome = Fail
			failed = append(failed, fmt.Sprintf("canary p99 latency %s > stable %s + %s",
				formatMillis(c.LatencyCanary.V), formatMillis(c.LatencyStable.V), pct(c.LatencyTolerance)))
		}
		out = append(out, s, Sample{Metric: SampleLatency, Track: v1alpha1.TrackStable, Value: c.LatencyStable.V, Unit: "ms", Source: SourcePrometheus, Outcome: Info})
	}
	return out, seq, failed
}

// pct writes a fraction as a percentage: 0.3 → "30.00%".
func pct(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

// pp writes a fraction as percentage points: 0.01 → "1pp".
func pp(f float64) string { return fmt.Sprintf("%vpp", roundTo(100*f, 4)) }

func evidence(logE float64) string { return fmt.Sprintf("%.3g", expCapped(logE)) }

func expCapped(x float64) float64 {
	if x > 700 {
		return math.Inf(1)
	}
	return math.Exp(x)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
