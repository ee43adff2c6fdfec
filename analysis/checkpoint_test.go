package analysis

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// retainingLRS is a data plane sending 10 canary and 20 stable requests a
// second (one canary error in ten) from start on, whose reports are kept
// for fifteen minutes as serin's store keeps them.
type retainingLRS struct {
	start, now time.Time
}

func (l *retainingLRS) LoadReports(_ string, since, until time.Time) map[v1alpha1.Track]v1alpha1.LoadCounts {
	from, to := since.Unix(), until.Unix()
	if until.After(time.Unix(to, 0)) {
		to++
	}
	from = max(from, l.start.Unix(), l.now.Add(-15*time.Minute).Unix())
	to = min(to, l.now.Unix())
	out := map[v1alpha1.Track]v1alpha1.LoadCounts{}
	if n := uint64(max(to-from, 0)); n > 0 {
		out[v1alpha1.TrackCanary] = v1alpha1.LoadCounts{Success: 9 * n, Errors: n}
		out[v1alpha1.TrackStable] = v1alpha1.LoadCounts{Success: 20 * n}
	}
	return out
}

var verdictCounts = regexp.MustCompile(`error-rate/(canary|stable)=[^;]* n=(\d+)`)

// TestReleaseCountsOutliveRetention: over a forty-minute release judged on
// load reports, each check's counts are every request since the analysis
// began, though reports older than fifteen minutes are gone; a check
// without the previous checkpoint (a status lost) counts what is left.
func TestReleaseCountsOutliveRetention(t *testing.T) {
	cl := "serin/test/podinfo/9898"
	c := canary()
	c.Spec.LoadReports = &v1alpha1.LoadReports{Enabled: true}
	c.Spec.Judge = &v1alpha1.Judge{Kind: v1alpha1.JudgeComparative, Tolerance: "0.5"}
	start := t0.Add(3500 * time.Millisecond)
	lrs := &retainingLRS{start: start}
	a := &Analyzer{LoadReports: lrs}
	counted := func(res Result) (n int) {
		for _, m := range verdictCounts.FindAllStringSubmatch(res.Summary(), -1) {
			v, _ := strconv.Atoi(m[2])
			n += v
		}
		return n
	}
	var cp *v1alpha1.LoadCheckpoint
	for minute := 1; minute <= 40; minute++ {
		now := start.Add(time.Duration(minute) * time.Minute)
		lrs.now = now
		res, err := a.Check(context.Background(), Input{Canary: c, Clusters: []string{cl}, ReleaseStart: start,
			WindowStart: now.Add(-time.Minute), Now: now, Checkpoint: cp})
		if err != nil {
			t.Fatal(err)
		}
		if want := 30 * int(now.Unix()-start.Unix()); counted(res) != want {
			t.Fatalf("minute %d: the verdict counts %d requests, want %d: %s", minute, counted(res), want, res.Summary())
		}
		if res.Checkpoint == nil || res.Checkpoint.Through.Unix()%10 != 0 || !res.Checkpoint.Since.Time.Equal(start) ||
			now.Sub(res.Checkpoint.Through.Time) < checkpointLag {
			t.Fatalf("minute %d: checkpoint %+v", minute, res.Checkpoint)
		}
		cp = res.Checkpoint
	}
	// Without the checkpoint, only what the reports still hold counts.
	res, err := a.Check(context.Background(), Input{Canary: c, Clusters: []string{cl}, ReleaseStart: start,
		WindowStart: lrs.now.Add(-time.Minute), Now: lrs.now})
	if err != nil {
		t.Fatal(err)
	}
	if got := counted(res); got != 30*15*60 {
		t.Fatalf("without a checkpoint the verdict counts %d, want the fifteen minutes kept (%d)", got, 30*15*60)
	}
	// A checkpoint of another release is not used.
	other := cp.DeepCopy()
	other.Since.Time = start.Add(-time.Hour)
	res, err = a.Check(context.Background(), Input{Canary: c, Clusters: []string{cl}, ReleaseStart: start,
		WindowStart: lrs.now.Add(-time.Minute), Now: lrs.now, Checkpoint: other})
	if err != nil || counted(res) != 30*15*60 {
		t.Fatalf("another release's checkpoint was used: %d requests counted, %v", counted(res), err)
	}
}
