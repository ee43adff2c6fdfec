package scale

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHistQuantile: quantiles of the observations between two scrapes,
// with the +Inf bucket counted once.
func TestHistQuantile(t *testing.T) {
	page := func(le1, le2, inf int) scrape {
		s, err := parseMetrics(strings.NewReader("# TYPE h histogram\n" +
			"h_bucket{le=\"0.1\"} " + strconv.Itoa(le1) + "\nh_bucket{le=\"1\"} " + strconv.Itoa(le2) + "\nh_bucket{le=\"+Inf\"} " + strconv.Itoa(inf) +
			"\nh_sum 1\nh_count " + strconv.Itoa(inf) + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before, after := page(10, 10, 10), page(60, 110, 110)
	if got := histQuantile(0.5, before.buckets("h", nil), after.buckets("h", nil)); math.Abs(got-0.1) > 1e-9 {
		t.Errorf("p50 %v, want 0.1", got)
	}
	if got := histQuantile(0.99, before.buckets("h", nil), after.buckets("h", nil)); got < 0.9 || got > 1 {
		t.Errorf("p99 %v, want within (0.9, 1]", got)
	}
	if got := histQuantile(0.5, after.buckets("h", nil), after.buckets("h", nil)); !math.IsNaN(got) {
		t.Errorf("no observations: %v", got)
	}
}

// TestTimesOf: the latencies of one release from its status history and
// its observer.
func TestTimesOf(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	h := []status{
		{At: at(-1000), Phase: "Initialized", Applied: -1},
		{At: at(800), Phase: "Progressing", Weight: 20, Revision: "r", Applied: -1},
		{At: at(900), Phase: "Progressing", Weight: 20, Revision: "r", Applied: 20},
		{At: at(6100), Phase: "Progressing", Weight: 40, Revision: "r", Applied: 20},
		{At: at(6300), Phase: "Progressing", Weight: 40, Revision: "r", Applied: 40},
		{At: at(12000), Phase: "Succeeded", Weight: 0, Revision: "", Applied: 0},
	}
	seen := []received{{At: at(-500), Stable: 100}, {At: at(850), Weight: 20, Stable: 80}, {At: at(6150), Weight: 40, Stable: 60}}
	rt := timesOf(h, seen, []time.Time{at(-5000), at(600)}, t0, "r")
	if rt.FirstWeight != 800*time.Millisecond || rt.Steps != 3 {
		t.Fatalf("first weight %s, steps %d", rt.FirstWeight, rt.Steps)
	}
	if rt.Started != 800*time.Millisecond || rt.CopyReady != 600*time.Millisecond || rt.AfterReady != 200*time.Millisecond {
		t.Errorf("started %s, copy ready %s, after ready %s; want 800ms, 600ms, 200ms", rt.Started, rt.CopyReady, rt.AfterReady)
	}
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}; !slices.Equal(rt.Acked, want) {
		t.Errorf("acked %v, want %v", rt.Acked, want)
	}
	if want := []time.Duration{50 * time.Millisecond, 50 * time.Millisecond}; !slices.Equal(rt.Observed, want) {
		t.Errorf("observed %v, want %v", rt.Observed, want)
	}
	// Weight 40 appeared 6100ms, weight 20 applied at 900ms + 5s.
	if want := []time.Duration{200 * time.Millisecond}; !slices.Equal(rt.Lateness, want) {
		t.Errorf("lateness %v, want %v", rt.Lateness, want)
	}
}
