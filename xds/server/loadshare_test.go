package server

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func counts(ok, errs uint64) v1alpha1.LoadCounts {
	return v1alpha1.LoadCounts{Success: ok, Errors: errs}
}

func TestEncodeDecodeLoadsRoundTrip(t *testing.T) {
	snap := LoadSnapshot{
		"serin/b/svc/80": {{Start: 1000, Width: 10, Stable: counts(90, 1)}, {Start: 1010, Width: 1, Canary: counts(5, 5)}},
		"serin/a/svc/80": {{Start: 999, Width: 1, Stable: counts(1, 0), Canary: counts(0, 2)}},
	}
	text, dropped := EncodeLoads(snap, 0)
	if dropped != 0 {
		t.Fatalf("dropped %d without a budget", dropped)
	}
	want := "v1|serin/a/svc/80=999:1,,,2;serin/b/svc/80=1000x10:90,1,, 10:,,5,5"
	if text != want {
		t.Fatalf("encoded\n %s\nwant\n %s", text, want)
	}
	got, err := DecodeLoads(text)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, snap) {
		t.Fatalf("decoded %+v, want %+v", got, snap)
	}
	if empty, _ := EncodeLoads(LoadSnapshot{}, 0); empty != "" {
		t.Errorf("empty snapshot encoded as %q", empty)
	}
}

func TestDecodeLoadsRejectsJunk(t *testing.T) {
	for _, text := range []string{
		"v0|a=1:1,1,1,1",                 // unknown format
		"v1|=1:1,,,",                     // no cluster name
		"v1|a=1:1,,",                     // three counts
		"v1|a=1:1,,, 0:1,,,",             // start does not increase
		"v1|a=1x0:1,,,",                  // width 0
		"v1|a=1:-1,,,",                   // negative count
		"v1|a=1",                         // no counts
		"v1|a=1:1,,,;b=z:1,,,",           // bad start
		"v1|a=1:99999999999999999999,,,", // overflow
	} {
		if _, err := DecodeLoads(text); err == nil {
			t.Errorf("DecodeLoads(%q) accepted it", text)
		}
	}
}

func TestCountsSumsOverlappingBuckets(t *testing.T) {
	snap := LoadSnapshot{"c": {
		{Start: 990, Width: 10, Stable: counts(100, 0)},
		{Start: 1000, Width: 1, Stable: counts(1, 0), Canary: counts(2, 1)},
		{Start: 1005, Width: 1, Canary: counts(4, 0)},
	}}
	at := func(sec int64, ms int) time.Time { return time.Unix(sec, int64(ms)*int64(time.Millisecond)) }
	for _, tc := range []struct {
		since, until   time.Time
		stable, canary v1alpha1.LoadCounts
	}{
		{at(1000, 0), at(1006, 0), counts(1, 0), counts(6, 1)},
		{at(1000, 0), at(1005, 0), counts(1, 0), counts(2, 1)},
		{at(1000, 0), at(1005, 1), counts(1, 0), counts(6, 1)},  // a partial last second counts
		{at(995, 0), at(1001, 0), counts(101, 0), counts(2, 1)}, // a coarse bucket partly inside counts whole
		{at(1006, 0), at(1010, 0), counts(0, 0), counts(0, 0)},
	} {
		got := snap.Counts("c", tc.since, tc.until)
		if got[v1alpha1.TrackStable] != tc.stable || got[v1alpha1.TrackCanary] != tc.canary {
			t.Errorf("[%v, %v): got %+v, want stable %+v canary %+v", tc.since.Unix(), tc.until.Unix(), got, tc.stable, tc.canary)
		}
	}
}

func TestCompactMergesOldSecondsAndDropsExpired(t *testing.T) {
	c := LoadCompaction{Fine: 60 * time.Second, Coarse: 10 * time.Second, Retention: 300 * time.Second}
	now := time.Unix(10_000, 0)
	snap := LoadSnapshot{
		"old":  {{Start: 9_600, Width: 1, Stable: counts(7, 0)}}, // ended before the retention
		"zero": {{Start: 9_990, Width: 1}},
		"c": {
			{Start: 9_901, Width: 1, Stable: counts(1, 0)},
			{Start: 9_905, Width: 1, Stable: counts(2, 1)},
			{Start: 9_911, Width: 1, Canary: counts(3, 0)},
			{Start: 9_950, Width: 1, Canary: counts(4, 0)}, // within Fine: stays
		},
	}
	got := c.Compact(snap, now)
	want := LoadSnapshot{"c": {
		{Start: 9_900, Width: 10, Stable: counts(3, 1)},
		{Start: 9_910, Width: 10, Canary: counts(3, 0)},
		{Start: 9_950, Width: 1, Canary: counts(4, 0)},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("compacted\n %+v\nwant\n %+v", got, want)
	}
	// Counts over a window that covers the data are unchanged.
	for _, w := range [][2]int64{{9_700, 10_000}, {9_900, 10_000}} {
		before := snap.Counts("c", time.Unix(w[0], 0), time.Unix(w[1], 0))
		after := got.Counts("c", time.Unix(w[0], 0), time.Unix(w[1], 0))
		if !reflect.DeepEqual(before, after) {
			t.Errorf("window %v: %+v before compaction, %+v after", w, before, after)
		}
	}
}

func TestEncodeLoadsBudgetDropsOldestFirst(t *testing.T) {
	snap := LoadSnapshot{}
	for c := range 20 {
		var bs []LoadBucket
		for s := range 200 {
			bs = append(bs, LoadBucket{Start: int64(1_000 + s), Width: 1, Stable: counts(uint64(100+s), 1), Canary: counts(12, uint64(s%3))})
		}
		snap[fmt.Sprintf("serin/ns-%02d/svc/8080", c)] = bs
	}
	full, _ := EncodeLoads(snap, 0)
	budget := len(full) / 4
	text, dropped := EncodeLoads(snap, budget)
	if len(text) > budget {
		t.Fatalf("encoded %d bytes over a budget of %d", len(text), budget)
	}
	if dropped == 0 {
		t.Fatal("nothing dropped to fit the budget")
	}
	got, err := DecodeLoads(text)
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for name, bs := range got {
		kept += len(bs)
		if last := bs[len(bs)-1]; last.Start != 1_199 {
			t.Errorf("%s lost its newest bucket: last starts at %d", name, last.Start)
		}
	}
	if kept+dropped != 20*200 {
		t.Errorf("kept %d and dropped %d of %d buckets", kept, dropped, 20*200)
	}
	t.Logf("20 clusters × 200 one-second buckets: %d bytes; within %d: %d bytes, %d buckets dropped", len(full), budget, len(text), dropped)
}

// TestSharedSnapshotSize reports the size of one replica's shared counts
// when every one of n clusters received reports every second of the
// retention.
func TestSharedSnapshotSize(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, n := range []int{1, 10, 100} {
		snap := LoadSnapshot{}
		for c := range n {
			var bs []LoadBucket
			for s := range int64(900) {
				bs = append(bs, LoadBucket{Start: now.Unix() - 900 + s, Width: 1, Stable: counts(uint64(40+s%7), uint64(s%2)), Canary: counts(uint64(10+s%3), 0)})
			}
			snap[fmt.Sprintf("serin/team-%03d/service-%03d/8080", c, c)] = bs
		}
		text, dropped := EncodeLoads(DefaultLoadCompaction.Compact(snap, now), DefaultLoadBudget)
		t.Logf("%3d clusters reporting every second for 15 minutes: %6d bytes shared, %d buckets dropped", n, len(text), dropped)
		if len(text) > DefaultLoadBudget {
			t.Errorf("%d bytes over the budget", len(text))
		}
	}
}

// TestStoreSnapshotAndSeed: what a replica shares and reads back after a
// restart counts the same as what it held.
func TestStoreSnapshotAndSeed(t *testing.T) {
	ls := newLoadStore(15 * time.Minute)
	now := time.Unix(1_800_000_000, 0)
	report := func(at time.Time, zone string, ok, errs uint64) {
		ls.add(at, []*endpointv3.ClusterStats{{ClusterName: "c", UpstreamLocalityStats: []*endpointv3.UpstreamLocalityStats{{
			Locality: &corev3.Locality{SubZone: zone}, TotalSuccessfulRequests: ok, TotalErrorRequests: errs}}}})
	}
	for s := range 300 {
		report(now.Add(time.Duration(s)*time.Second), "stable", 9, 1)
		report(now.Add(time.Duration(s)*time.Second), "canary", 1, 0)
	}
	end := now.Add(300 * time.Second)
	held, _ := ls.snapshot()
	text, _ := EncodeLoads(DefaultLoadCompaction.Compact(held, end), 0)
	snap, err := DecodeLoads(text)
	if err != nil {
		t.Fatal(err)
	}
	restarted := newLoadStore(15 * time.Minute)
	restarted.seed(snap)
	whole := func(s *loadStore) map[v1alpha1.Track]v1alpha1.LoadCounts { return s.reports("c", now, end) }
	want := map[v1alpha1.Track]v1alpha1.LoadCounts{"stable": {Success: 2700, Errors: 300, Issued: 0}, "canary": {Success: 300}}
	if got := whole(restarted); !reflect.DeepEqual(got, want) {
		t.Fatalf("restarted store counts %+v, want %+v", got, want)
	}
	if !strings.HasPrefix(text, "v1|c=") {
		t.Errorf("shared text %.20q", text)
	}
}
