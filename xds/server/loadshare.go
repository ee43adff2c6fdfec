package server

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Load reports reach whichever replica a proxy is connected to, but only
// the leader analyses. So every replica shares the counts it holds as a
// LoadSnapshot, in a compact text form (EncodeLoads) small enough for an
// annotation, and the leader adds the other replicas' snapshots to its
// own. The functions below are pure; xds/traffic does the sharing.

// LoadBucket is what a cluster's proxies reported over the Width seconds
// from Start (Unix seconds), for the two tracks.
type LoadBucket struct {
	Start, Width int64
	Stable       v1alpha1.LoadCounts
	Canary       v1alpha1.LoadCounts
}

// end is the first second after the bucket.
func (b LoadBucket) end() int64 { return b.Start + max(b.Width, 1) }

// overlaps says whether the bucket shares a second with [from, to).
func (b LoadBucket) overlaps(from, to int64) bool { return b.Start < to && b.end() > from }

func (b LoadBucket) empty() bool {
	return b.Stable.Success+b.Stable.Errors+b.Canary.Success+b.Canary.Errors == 0
}

func (b *LoadBucket) add(o LoadBucket) {
	b.Stable.Add(o.Stable)
	b.Canary.Add(o.Canary)
}

// DefaultLoadBudget bounds a shared snapshot's text: it goes into an
// annotation, and the API server allows 256 KiB for all of an object's
// annotations.
const DefaultLoadBudget = 128 << 10

// LoadSnapshot is the counts held for each cluster, buckets in ascending
// Start order.
type LoadSnapshot map[string][]LoadBucket

// Counts sums the buckets of cluster that overlap [since, until), by track:
// a bucket partly inside the window counts whole, so a window never
// loses requests, and at one-second buckets it is the window rounded out
// to whole seconds.
func (s LoadSnapshot) Counts(cluster string, since, until time.Time) map[v1alpha1.Track]v1alpha1.LoadCounts {
	out := map[v1alpha1.Track]v1alpha1.LoadCounts{}
	from, to := windowSeconds(since, until)
	var st, ca v1alpha1.LoadCounts
	for _, b := range s[cluster] {
		if b.overlaps(from, to) {
			st.Add(b.Stable)
			ca.Add(b.Canary)
		}
	}
	if st != (v1alpha1.LoadCounts{}) {
		out[v1alpha1.TrackStable] = st
	}
	if ca != (v1alpha1.LoadCounts{}) {
		out[v1alpha1.TrackCanary] = ca
	}
	return out
}

// windowSeconds is [since, until) in whole seconds; a partial second at
// the end counts as a whole one.
func windowSeconds(since, until time.Time) (from, to int64) {
	from, to = since.Unix(), until.Unix()
	if until.After(time.Unix(to, 0)) {
		to++
	}
	return from, to
}

// LoadCompaction says how a snapshot is kept small before it is shared:
// buckets that ended more than Fine ago are merged into buckets of
// Coarse seconds (aligned to multiples of Coarse), and buckets that ended
// more than Retention ago are dropped.
type LoadCompaction struct {
	Fine, Coarse, Retention time.Duration
}

// DefaultLoadCompaction keeps two minutes at one second, then ten-second
// buckets up to fifteen minutes (the default retention of the store).
var DefaultLoadCompaction = LoadCompaction{Fine: 2 * time.Minute, Coarse: 10 * time.Second, Retention: 15 * time.Minute}

// Compact returns s merged and trimmed as c says, at now, buckets in
// ascending order; empty buckets and clusters are left out.
func (c LoadCompaction) Compact(s LoadSnapshot, now time.Time) LoadSnapshot {
	fine := now.Add(-c.Fine).Unix()
	oldest := now.Add(-c.Retention).Unix()
	coarse := max(int64(c.Coarse/time.Second), 1)
	out := LoadSnapshot{}
	for name, bs := range s {
		bs = append([]LoadBucket(nil), bs...)
		sort.SliceStable(bs, func(i, j int) bool { return bs[i].Start < bs[j].Start })
		var kept []LoadBucket
		for _, b := range bs {
			if b.end() <= oldest || b.empty() {
				continue
			}
			// A second is merged once its whole coarse bucket is past
			// Fine, so the merged form changes once per Coarse.
			if start := b.Start - mod(b.Start, coarse); start+coarse <= fine && b.Width < coarse {
				b = LoadBucket{Start: start, Width: coarse, Stable: b.Stable, Canary: b.Canary}
			}
			if n := len(kept); n > 0 && kept[n-1].Start == b.Start {
				kept[n-1].add(b)
				kept[n-1].Width = max(kept[n-1].Width, b.Width)
				continue
			}
			kept = append(kept, b)
		}
		if len(kept) > 0 {
			out[name] = kept
		}
	}
	return out
}

func mod(a, b int64) int64 { return ((a % b) + b) % b }

// The text form of a snapshot: clusters in name order, separated by ";",
// each "name=bucket bucket ...". A bucket is
// "start[xwidth]:stableOK,stableErr,canaryOK,canaryErr", start the
// difference from the previous bucket's start (the first one absolute),
// width left out when 1, zeros left out. Issued counts are not shared
// (analysis reads completed requests only).
const loadFormat = "v1|"

// EncodeLoads is the text form of s in at most budget bytes: when it is
// larger, the oldest buckets (of any cluster) are left out first, and
// dropped says how many. A budget of 0 is no limit.
func EncodeLoads(s LoadSnapshot, budget int) (text string, dropped int) {
	type ref struct {
		name  string
		start int64
	}
	text = encodeLoads(s)
	if budget <= 0 || len(text) <= budget {
		return text, 0
	}
	var all []ref
	for name, bs := range s {
		for _, b := range bs {
			all = append(all, ref{name, b.Start})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].start != all[j].start {
			return all[i].start < all[j].start
		}
		return all[i].name < all[j].name
	})
	cut := LoadSnapshot{}
	for name, bs := range s {
		cut[name] = bs
	}
	for len(text) > budget && dropped < len(all) {
		// Drop a share of what is left at a time: the size is about
		// proportional to the buckets.
		n := max((len(all)-dropped)*(len(text)-budget)/len(text), 1)
		for _, r := range all[dropped:min(dropped+n, len(all))] {
			bs := cut[r.name]
			cut[r.name] = bs[1:] // the oldest of each cluster goes first
			if len(cut[r.name]) == 0 {
				delete(cut, r.name)
			}
		}
		dropped = min(dropped+n, len(all))
		text = encodeLoads(cut)
	}
	return text, dropped
}

func encodeLoads(s LoadSnapshot) string {
	if len(s) == 0 {
		return ""
	}
	names := make([]string, 0, len(s))
	for name := range s {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(loadFormat)
	for i, name := range names {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(name)
		b.WriteByte('=')
		var prev int64
		for j, bk := range s[name] {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatInt(bk.Start-prev, 10))
			prev = bk.Start
			if bk.Width > 1 {
				b.WriteByte('x')
				b.WriteString(strconv.FormatInt(bk.Width, 10))
			}
			b.WriteByte(':')
			for k, v := range [4]uint64{bk.Stable.Success, bk.Stable.Errors, bk.Canary.Success, bk.Canary.Errors} {
				if k > 0 {
					b.WriteByte(',')
				}
				if v != 0 {
					b.WriteString(strconv.FormatUint(v, 10))
				}
			}
		}
	}
	return b.String()
}

// DecodeLoads reads the text form of EncodeLoads.
func DecodeLoads(text string) (LoadSnapshot, error) {
	out := LoadSnapshot{}
	if text == "" {
		return out, nil
	}
	body, ok := strings.CutPrefix(text, loadFormat)
	if !ok {
		return nil, fmt.Errorf("load snapshot: unknown format %.10q", text)
	}
	for _, section := range strings.Split(body, ";") {
		name, buckets, ok := strings.Cut(section, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("load snapshot: section %.40q has no cluster name", section)
		}
		bs, err := decodeBuckets(buckets)
		if err != nil {
			return nil, fmt.Errorf("load snapshot: cluster %s: %w", name, err)
		}
		out[name] = bs
	}
	return out, nil
}

func decodeBuckets(text string) ([]LoadBucket, error) {
	var out []LoadBucket
	var prev int64
	for _, tok := range strings.Fields(text) {
		head, counts, ok := strings.Cut(tok, ":")
		if !ok {
			return nil, fmt.Errorf("bucket %q has no counts", tok)
		}
		delta, width, hasWidth := strings.Cut(head, "x")
		b := LoadBucket{Width: 1}
		d, err := strconv.ParseInt(delta, 10, 64)
		if err != nil || (len(out) > 0 && d <= 0) {
			return nil, fmt.Errorf("bucket %q: bad start", tok)
		}
		b.Start = prev + d
		prev = b.Start
		if hasWidth {
			if b.Width, err = strconv.ParseInt(width, 10, 64); err != nil || b.Width < 1 {
				return nil, fmt.Errorf("bucket %q: bad width", tok)
			}
		}
		vals := strings.Split(counts, ",")
		if len(vals) != 4 {
			return nil, fmt.Errorf("bucket %q: want 4 counts", tok)
		}
		var n [4]uint64
		for i, v := range vals {
			if v == "" {
				continue
			}
			if n[i], err = strconv.ParseUint(v, 10, 64); err != nil {
				return nil, fmt.Errorf("bucket %q: %w", tok, err)
			}
		}
		b.Stable = v1alpha1.LoadCounts{Success: n[0], Errors: n[1]}
		b.Canary = v1alpha1.LoadCounts{Success: n[2], Errors: n[3]}
		out = append(out, b)
	}
	return out, nil
}

// LoadSnapshot is the counts this replica holds, as of now, and the
// generation of the store they are from: it grows whenever counts are
// added, and only then.
func (s *Server) LoadSnapshot() (LoadSnapshot, uint64) { return s.loads.snapshot() }

// SeedLoads adds counts this replica held before a restart (its own
// shared snapshot) to its store.
func (s *Server) SeedLoads(snap LoadSnapshot) { s.loads.seed(snap) }
