package analysis

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Verdict is what a check says about the current step.
type Verdict string

// Verdicts.
const (
	// Promote: the step passed (with Result.Early, skip the remaining
	// steps and promote now).
	Promote Verdict = "Promote"
	// Hold: do not advance. Result.FailedCheck says whether a check failed
	// (count it against the threshold) or the evidence is inconclusive
	// (wait, count nothing).
	Hold Verdict = "Hold"
	// Rollback: the evidence against the canary is decisive; roll back now.
	Rollback Verdict = "Rollback"
	// NoData: the canary had no traffic (or a metric had no data); wait,
	// count nothing, pass nothing.
	NoData Verdict = "NoData"
)

// Verdicts are every verdict a check gives.
var Verdicts = [...]Verdict{Promote, Hold, Rollback, NoData}

// Outcome is what became of one sample.
type Outcome string

// Sample outcomes.
const (
	// Pass: inside its threshold.
	Pass Outcome = "pass"
	// Fail: outside its threshold.
	Fail Outcome = "fail"
	// Missing: no data.
	Missing Outcome = "nodata"
	// Errored: the query failed.
	Errored Outcome = "error"
	// Info: shown for context, not judged (e.g. stable's value).
	Info Outcome = "info"
)

// Sources of samples.
const (
	SourcePrometheus  = "prometheus"
	SourceLoadReports = "load-reports"
	SourceJudge       = "judge"
)

// Sample is one sampled value next to its threshold.
type Sample struct {
	// Metric is the metric's name (request-success-rate, request-duration,
	// a custom metric's name) or a comparative quantity (error-rate,
	// rollback-evidence, promotion-evidence, latency-p99).
	Metric string
	// Track is the track the value was sampled on.
	Track v1alpha1.Track
	Value float64
	// Unit is "%", "ms" or "".
	Unit string
	// Min and Max are the threshold; nil is unbounded.
	Min, Max *float64
	// Requests behind the value, when known.
	Requests float64
	Outcome  Outcome
	// Source is where the value came from.
	Source string
	// Window is the time range the value covers.
	Window time.Duration
	// Detail is the error of a failed query, or a note.
	Detail string
}

// Result is the verdict on a step, with every value it was based on.
type Result struct {
	Verdict Verdict
	// FailedCheck is set on a Hold caused by a failed check; the engine
	// counts it against the threshold. A Hold without it is inconclusive.
	FailedCheck bool
	// Early is set on a Promote when the canary is proven no worse than
	// stable and early promotion is on.
	Early bool
	// Samples are every value judged or shown, in spec order.
	Samples []Sample
	// Message is one line in Flagger's words, e.g. "Halt podinfo.test
	// advancement success rate 98.69% < 99%".
	Message string
	// Checkpoint, when set, is the release's load-report counts for the
	// engine to keep in status and pass to the next check (Input).
	Checkpoint *v1alpha1.LoadCheckpoint
}

// String is a short form for status fields: the verdict and the message.
func (r Result) String() string {
	v := string(r.Verdict)
	switch {
	case r.Verdict == Hold && r.FailedCheck:
		v = "Hold (failed check)"
	case r.Verdict == Hold:
		v = "Hold (inconclusive)"
	case r.Early:
		v = "Promote (early)"
	}
	return v + ": " + r.Message
}

// Summary lists every sample with its threshold on one line, for status:
// "request-success-rate/canary=98.69% (min 99%) fail n=100 from prometheus; …".
func (r Result) Summary() string {
	parts := make([]string, 0, len(r.Samples))
	for _, s := range r.Samples {
		parts = append(parts, s.key()+"="+s.String())
	}
	return strings.Join(parts, "; ")
}

func (s Sample) key() string {
	if s.Track == "" {
		return s.Metric
	}
	return s.Metric + "/" + string(s.Track)
}

// KeysAndValues lays the result out for a logr call: verdict, flags and
// each sample as "metric[/track]" = "value unit (threshold) outcome".
func (r Result) KeysAndValues() []any {
	kv := []any{"verdict", string(r.Verdict), "failedCheck", r.FailedCheck, "early", r.Early}
	for _, s := range r.Samples {
		kv = append(kv, s.key(), s.String())
	}
	return kv
}

// String writes a sample as "12.5% (max 1%) fail".
func (s Sample) String() string {
	var b strings.Builder
	if s.Outcome == Missing || s.Outcome == Errored {
		b.WriteString(string(s.Outcome))
	} else {
		b.WriteString(formatValue(s.Value, s.Unit))
	}
	var bounds []string
	if s.Min != nil {
		bounds = append(bounds, "min "+formatValue(*s.Min, s.Unit))
	}
	if s.Max != nil {
		bounds = append(bounds, "max "+formatValue(*s.Max, s.Unit))
	}
	if len(bounds) > 0 {
		b.WriteString(" (" + strings.Join(bounds, ", ") + ")")
	}
	if s.Outcome != Missing && s.Outcome != Errored {
		b.WriteString(" " + string(s.Outcome))
	}
	if s.Requests > 0 {
		b.WriteString(" n=" + strconv.FormatFloat(s.Requests, 'f', -1, 64))
	}
	if s.Source != "" {
		b.WriteString(" from " + s.Source)
	}
	if s.Detail != "" {
		b.WriteString(": " + s.Detail)
	}
	return b.String()
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "%":
		return strconv.FormatFloat(roundTo(v, 4), 'f', -1, 64) + "%"
	case "ms":
		return formatMillis(v)
	default:
		return strconv.FormatFloat(roundTo(v, 6), 'g', -1, 64)
	}
}

// formatMillis writes milliseconds as a Go duration, as Flagger does:
// 1515 → "1.515s", 500 → "500ms".
func formatMillis(ms float64) string {
	switch {
	case math.IsNaN(ms):
		return "NaN"
	case math.IsInf(ms, 1) || ms > float64(math.MaxInt64/int64(time.Millisecond)):
		return "+Inf"
	case math.IsInf(ms, -1) || ms < 0:
		return fmt.Sprintf("%gms", ms)
	}
	return time.Duration(ms * float64(time.Millisecond)).Round(time.Microsecond).String()
}

func roundTo(v float64, digits int) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func ptr(f float64) *float64 { return &f }
