package analysis

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func rng(min, max *float64) *v1alpha1.CanaryThresholdRange {
	return &v1alpha1.CanaryThresholdRange{Min: min, Max: max}
}

func successRate(v float64, n float64) MetricValue {
	return MetricValue{Name: v1alpha1.MetricRequestSuccessRate, Kind: KindSuccessRate, Canary: Value{V: v, OK: n > 0},
		CanaryRequests: n, Range: rng(ptr(99), nil), Source: SourcePrometheus, Window: time.Minute}
}

func duration(v float64) MetricValue {
	return MetricValue{Name: v1alpha1.MetricRequestDuration, Kind: KindDuration, Canary: Value{V: v, OK: true}, Range: rng(nil, ptr(500))}
}

func cmpWith(release ErrorCounts) *Comparison {
	return &Comparison{Release: release, Step: release, Source: SourceLoadReports, FalseRollbackRate: 0.01,
		Tolerance: 0.01, LatencyTolerance: 0.2}
}

func TestJudge(t *testing.T) {
	healthy := ErrorCounts{CanaryRequests: 20000, CanaryErrors: 20, StableRequests: 180000, StableErrors: 180}
	bad := ErrorCounts{CanaryRequests: 40, CanaryErrors: 12, StableRequests: 360, StableErrors: 1}
	tests := []struct {
		name        string
		ev          Evidence
		verdict     Verdict
		failedCheck bool
		early       bool
		message     string // exact when it starts with "=", else a substring
	}{
		{name: "all metrics pass", ev: Evidence{Target: "podinfo.test", Metrics: []MetricValue{successRate(99.5, 100), duration(120)}},
			verdict: Promote, message: "=Check passed for podinfo.test: success rate 99.50% >= 99%, request duration 120ms <= 500ms"},
		{name: "success rate below min", ev: Evidence{Target: "podinfo.test", Metrics: []MetricValue{successRate(98.69, 100), duration(120)}},
			verdict: Hold, failedCheck: true, message: "=Halt podinfo.test advancement success rate 98.69% < 99%"},
		{name: "duration above max", ev: Evidence{Target: "podinfo.test", Metrics: []MetricValue{successRate(100, 100), duration(1200)}},
			verdict: Hold, failedCheck: true, message: "=Halt podinfo.test advancement request duration 1.2s > 500ms"},
		{name: "custom metric above max", ev: Evidence{Target: "podinfo.test", Metrics: []MetricValue{{Name: "404s percentage", Canary: Value{V: 12, OK: true}, Range: rng(nil, ptr(5))}}},
			verdict: Hold, failedCheck: true, message: "=Halt podinfo.test advancement 404s percentage 12.00 > 5"},
		{name: "two failures in one line", ev: Evidence{Target: "a.b", Metrics: []MetricValue{successRate(90, 10), duration(1515)}},
			verdict: Hold, failedCheck: true, message: "=Halt a.b advancement success rate 90.00% < 99%, request duration 1.515s > 500ms"},
		{name: "no traffic is NoData, not a failure", ev: Evidence{Target: "podinfo.test", Metrics: []MetricValue{successRate(0, 0)}},
			verdict: NoData, message: "=Halt podinfo.test advancement no data for request-success-rate: the canary received no traffic"},
		{name: "empty template result is NoData", ev: Evidence{Target: "a.b", Metrics: []MetricValue{successRate(100, 5), {Name: "custom", Range: rng(nil, ptr(1))}}},
			verdict: NoData, message: "no data for custom: the queries returned no data"},
		{name: "failed query is a failed check", ev: Evidence{Target: "a.b", Metrics: []MetricValue{{Name: "custom", Err: errors.New("connection refused")}}},
			verdict: Hold, failedCheck: true, message: "=Halt a.b advancement metric custom query failed: connection refused"},
		{name: "failure beats no data", ev: Evidence{Target: "a.b", Metrics: []MetricValue{successRate(0, 0), duration(900)}},
			verdict: Hold, failedCheck: true, message: "request duration 900ms > 500ms"},
		{name: "no range never fails", ev: Evidence{Target: "a.b", Metrics: []MetricValue{{Name: "info", Canary: Value{V: 1e9, OK: true}}}},
			verdict: Promote, message: "info 1000000000.00"},
		{name: "no metrics", ev: Evidence{Target: "a.b"}, verdict: Promote, message: "no metrics to check"},
		{name: "comparative decisive rollback beats everything", ev: Evidence{Target: "podinfo.test", Metrics: []MetricValue{successRate(70, 40)}, Comparison: cmpWith(bad)},
			verdict: Rollback, message: "Rolling back podinfo.test canary error rate 30.00% > stable 0.28% + 1pp"},
		{name: "comparative inconclusive hold", ev: Evidence{Target: "a.b", Comparison: cmpWith(ErrorCounts{CanaryRequests: 5, CanaryErrors: 1, StableRequests: 45})},
			verdict: Hold, message: "not yet decisive"},
		{name: "comparative healthy without early promotion", ev: Evidence{Target: "a.b", Comparison: cmpWith(healthy)},
			verdict: Promote, message: "canary error rate 0.10% <= stable 0.10% + 1pp"},
		{name: "comparative early promotion", ev: Evidence{Target: "a.b", Comparison: func() *Comparison { c := cmpWith(healthy); c.EarlyPromotion = true; return c }()},
			verdict: Promote, early: true, message: "Promote a.b early"},
		{name: "early promotion waits for threshold checks", ev: Evidence{Target: "a.b", Metrics: []MetricValue{duration(900)},
			Comparison: func() *Comparison { c := cmpWith(healthy); c.EarlyPromotion = true; return c }()},
			verdict: Hold, failedCheck: true},
		{name: "comparative no step traffic is NoData", ev: Evidence{Target: "a.b", Comparison: func() *Comparison { c := cmpWith(healthy); c.Step = ErrorCounts{StableRequests: 10}; return c }()},
			verdict: NoData, message: "the canary received no traffic"},
		{name: "comparative latency regression", ev: Evidence{Target: "a.b", Comparison: func() *Comparison {
			c := cmpWith(healthy)
			c.LatencyCanary, c.LatencyStable = Value{V: 300, OK: true}, Value{V: 200, OK: true}
			return c
		}()}, verdict: Hold, failedCheck: true, message: "canary p99 latency 300ms > stable 200ms + 20.00%"},
		{name: "comparative latency within tolerance", ev: Evidence{Target: "a.b", Comparison: func() *Comparison {
			c := cmpWith(healthy)
			c.LatencyCanary, c.LatencyStable = Value{V: 230, OK: true}, Value{V: 200, OK: true}
			return c
		}()}, verdict: Promote},
		{name: "comparative latency slack at tiny latencies", ev: Evidence{Target: "a.b", Comparison: func() *Comparison {
			c := cmpWith(healthy)
			c.LatencyCanary, c.LatencyStable = Value{V: 4, OK: true}, Value{V: 1, OK: true}
			return c
		}()}, verdict: Promote},
		{name: "comparative latency not compared on a handful of requests", ev: Evidence{Target: "a.b", Comparison: func() *Comparison {
			c := cmpWith(healthy)
			c.Step.CanaryRequests = 5
			c.LatencyCanary, c.LatencyStable = Value{V: 300, OK: true}, Value{V: 20, OK: true}
			return c
		}()}, verdict: Promote},
		{name: "comparative counts unavailable", ev: Evidence{Target: "a.b", Comparison: &Comparison{Err: errors.New("prometheus down"), FalseRollbackRate: 0.01}},
			verdict: Hold, failedCheck: true, message: "error rates unavailable: prometheus down"},
		{name: "comparative without stable traffic cannot decide", ev: Evidence{Target: "a.b", Comparison: cmpWith(ErrorCounts{CanaryRequests: 100, CanaryErrors: 100})},
			verdict: Promote, message: "canary error rate 100.00% (stable served no requests to compare with)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Judge(tt.ev)
			if r.Verdict != tt.verdict || r.FailedCheck != tt.failedCheck || r.Early != tt.early {
				t.Fatalf("Judge() = %s failed=%v early=%v (%s); want %s failed=%v early=%v",
					r.Verdict, r.FailedCheck, r.Early, r.Message, tt.verdict, tt.failedCheck, tt.early)
			}
			if exact, ok := strings.CutPrefix(tt.message, "="); ok {
				if r.Message != exact {
					t.Fatalf("Message = %q, want %q", r.Message, exact)
				}
			} else if !strings.Contains(r.Message, tt.message) {
				t.Fatalf("Message = %q, want it to contain %q", r.Message, tt.message)
			}
		})
	}
}

func TestJudgeSamplesCarryThresholds(t *testing.T) {
	st := Value{V: 99.9, OK: true}
	m := successRate(98.69, 100)
	m.Stable, m.StableRequests = &st, 900
	c := cmpWith(ErrorCounts{CanaryRequests: 40, CanaryErrors: 12, StableRequests: 360, StableErrors: 1})
	c.EarlyPromotion = true
	r := Judge(Evidence{Target: "a.b", Metrics: []MetricValue{m}, Comparison: c})
	byKey := map[string]Sample{}
	for _, s := range r.Samples {
		byKey[s.Metric+"/"+string(s.Track)] = s
	}
	sr := byKey[v1alpha1.MetricRequestSuccessRate+"/canary"]
	if sr.Value != 98.69 || sr.Min == nil || *sr.Min != 99 || sr.Outcome != Fail || sr.Requests != 100 {
		t.Errorf("success-rate sample = %+v", sr)
	}
	if s := byKey[v1alpha1.MetricRequestSuccessRate+"/stable"]; s.Value != 99.9 || s.Outcome != Info {
		t.Errorf("stable success-rate sample = %+v", s)
	}
	er := byKey[SampleErrorRate+"/canary"]
	if er.Value != 30 || er.Max == nil || *er.Max < 1.27 || *er.Max > 1.28 || er.Outcome != Fail {
		t.Errorf("error-rate sample = %+v", er)
	}
	ev := byKey[SampleRollbackEvidence+"/"]
	if ev.Max == nil || *ev.Max < 99.99 || *ev.Max > 100.01 || ev.Value < *ev.Max || ev.Outcome != Fail {
		t.Errorf("rollback-evidence sample = %+v", ev)
	}
	if _, ok := byKey[SamplePromotionEvidence+"/"]; !ok {
		t.Error("promotion-evidence sample missing with early promotion on")
	}
	kv := r.KeysAndValues()
	if len(kv)%2 != 0 || kv[0] != "verdict" || kv[1] != "Rollback" {
		t.Errorf("KeysAndValues() = %v", kv)
	}
	found := false
	for i := 0; i < len(kv); i += 2 {
		if kv[i] == "request-success-rate/canary" {
			found = true
			if s := kv[i+1].(string); !strings.Contains(s, "98.69% (min 99%) fail n=100") {
				t.Errorf("sample text = %q", s)
			}
		}
	}
	if !found {
		t.Errorf("KeysAndValues() lacks the success rate: %v", kv)
	}
	if got := r.String(); !strings.HasPrefix(got, "Rollback: Rolling back a.b") {
		t.Errorf("String() = %q", got)
	}
}

func TestFormatMillis(t *testing.T) {
	for in, want := range map[float64]string{1515: "1.515s", 500: "500ms", 0.25: "250µs", 12.3456: "12.346ms", 1e300: "+Inf"} {
		if got := formatMillis(in); got != want {
			t.Errorf("formatMillis(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestParseJudge(t *testing.T) {
	c, err := ParseJudge(nil)
	if err != nil || c.Kind != v1alpha1.JudgeThreshold || c.FalseRollbackRate != 0.01 || c.Tolerance != 0.01 || c.LatencyTolerance != 0.2 {
		t.Fatalf("ParseJudge(nil) = %+v, %v", c, err)
	}
	c, err = ParseJudge(&v1alpha1.Judge{Kind: v1alpha1.JudgeComparative, FalseRollbackRate: "0.001", Tolerance: "0.5", LatencyTolerance: "10", EarlyPromotion: true})
	if err != nil || c.FalseRollbackRate != 0.001 || c.Tolerance != 0.005 || c.LatencyTolerance != 0.1 || !c.EarlyPromotion {
		t.Fatalf("ParseJudge() = %+v, %v", c, err)
	}
	for _, bad := range []v1alpha1.Judge{{Kind: "Bayes"}, {FalseRollbackRate: "0"}, {FalseRollbackRate: "0.5"}, {FalseRollbackRate: "x"},
		{Tolerance: "-1"}, {Tolerance: "100.5"}, {LatencyTolerance: "-5"}} {
		if _, err := ParseJudge(&bad); err == nil {
			t.Errorf("ParseJudge(%+v) accepted", bad)
		}
	}
}
