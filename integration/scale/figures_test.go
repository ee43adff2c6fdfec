package scale

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// releaseTimes are one release's latencies, from the Canary's status as
// a watch saw it and from its observer.
type releaseTimes struct {
	// FirstWeight is apply → the first canary weight in status, in three
	// parts: Started, apply → serin's first status of the release (it
	// made the copy); CopyReady, apply → every pod of the copy available
	// (the cluster's part); AfterReady, copy ready → the first weight.
	FirstWeight, Started, CopyReady, AfterReady time.Duration
	// Acked are status weight → TrafficApplied for it (every proxy ACKed,
	// as serin records it), one per step.
	Acked []time.Duration
	// Observed are status weight → the observer received it.
	Observed []time.Duration
	// Lateness is, per step after the first, when the next weight
	// appeared against the previous weight's application + interval.
	Lateness []time.Duration
	// Steps counts the weights the release went through (0 after it
	// counts too).
	Steps int
}

// timesOf computes a release's latencies. h is the Canary's status
// history, seen what its observer received, applied when the release was
// started, rev its candidate revision.
func timesOf(h []status, seen []received, copyReady []time.Time, applied time.Time, rev string) releaseTimes {
	var rt releaseTimes
	firstWeight := map[int32]time.Time{}
	firstApplied := map[int32]time.Time{}
	var order []int32
	var started time.Time
	for _, s := range h {
		if s.At.Before(applied) {
			continue
		}
		if s.Revision == rev && started.IsZero() {
			started = s.At
		}
		if s.Revision == rev && s.Weight > 0 {
			if _, ok := firstWeight[s.Weight]; !ok {
				firstWeight[s.Weight] = s.At
				order = append(order, s.Weight)
			}
		}
		if _, ok := firstApplied[s.Applied]; !ok && s.Applied > 0 {
			firstApplied[s.Applied] = s.At
		}
	}
	if len(order) == 0 {
		return rt
	}
	rt.FirstWeight = firstWeight[order[0]].Sub(applied)
	if !started.IsZero() {
		rt.Started = started.Sub(applied)
	}
	for _, at := range copyReady {
		if !at.Before(applied) {
			rt.CopyReady = at.Sub(applied)
			rt.AfterReady = max(0, rt.FirstWeight-rt.CopyReady)
			break
		}
	}
	rt.Steps = len(order) + 1
	for i, w := range order {
		at := firstWeight[w]
		if ack, ok := firstApplied[w]; ok && !ack.Before(at) {
			rt.Acked = append(rt.Acked, ack.Sub(at))
		}
		if got, ok := firstReceived(seen, w, applied); ok {
			rt.Observed = append(rt.Observed, max(0, got.Sub(at)))
		}
		if i > 0 {
			if prev, ok := firstApplied[order[i-1]]; ok {
				rt.Lateness = append(rt.Lateness, at.Sub(prev.Add(interval)))
			}
		}
	}
	return rt
}

func firstReceived(seen []received, w int32, after time.Time) (time.Time, bool) {
	for _, r := range seen {
		if r.Weight == w && !r.At.Before(after) {
			return r.At, true
		}
	}
	return time.Time{}, false
}

// waveFigures sums up the latencies of a wave of releases.
type waveFigures struct {
	Name                             string
	Releases, Correct, Steps, Unheld int
	First, Acked, Observed, Lateness []time.Duration
	Started, CopyReady, AfterReady   []time.Duration
}

func (w *waveFigures) add(rt releaseTimes, correct, unheld bool) {
	if unheld {
		w.Unheld++
	}
	w.Releases++
	if correct {
		w.Correct++
	}
	w.Steps += rt.Steps
	if rt.FirstWeight > 0 {
		w.First = append(w.First, rt.FirstWeight)
		w.Started = append(w.Started, rt.Started)
		if rt.CopyReady > 0 {
			w.CopyReady = append(w.CopyReady, rt.CopyReady)
			w.AfterReady = append(w.AfterReady, rt.AfterReady)
		}
	}
	w.Acked = append(w.Acked, rt.Acked...)
	w.Observed = append(w.Observed, rt.Observed...)
	w.Lateness = append(w.Lateness, rt.Lateness...)
}

func (w waveFigures) lines() []string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
	return []string{
		fmt.Sprintf("%s: releases finished correctly %d/%d, steps %d, changes admitted without the hold (webhook timeout) %d", w.Name, w.Correct, w.Releases, w.Steps, w.Unheld),
		fmt.Sprintf("%s: apply → first canary weight in status  p50 %s  p99 %s  max %s  (n=%d)", w.Name,
			ms(quantile(0.5, w.First)), ms(quantile(0.99, w.First)), ms(quantile(1, w.First)), len(w.First)),
		fmt.Sprintf("%s:   of which apply → serin's first status of the release (copy made)  p50 %s  p99 %s; apply → copy ready (the cluster)  p50 %s  p99 %s; copy ready → first weight  p50 %s  p99 %s  (n=%d)", w.Name,
			ms(quantile(0.5, w.Started)), ms(quantile(0.99, w.Started)), ms(quantile(0.5, w.CopyReady)), ms(quantile(0.99, w.CopyReady)),
			ms(quantile(0.5, w.AfterReady)), ms(quantile(0.99, w.AfterReady)), len(w.CopyReady)),
		fmt.Sprintf("%s: status weight → every proxy ACKed (TrafficApplied)  p50 %s  p99 %s  (n=%d)", w.Name,
			ms(quantile(0.5, w.Acked)), ms(quantile(0.99, w.Acked)), len(w.Acked)),
		fmt.Sprintf("%s: status weight → observer received it  p50 %s  p99 %s  (n=%d)", w.Name,
			ms(quantile(0.5, w.Observed)), ms(quantile(0.99, w.Observed)), len(w.Observed)),
		fmt.Sprintf("%s: step lateness against the %s interval  p50 %s  p99 %s  (n=%d)", w.Name, interval,
			ms(quantile(0.5, w.Lateness)), ms(quantile(0.99, w.Lateness)), len(w.Lateness)),
	}
}

// endedAsDesigned reports whether a release's last status is the phase it
// was designed to end in, with no canary weight left.
func endedAsDesigned(a *app, last status) bool {
	want := v1alpha1.PhaseSucceeded
	if a.Failing {
		want = v1alpha1.PhaseFailed
	}
	return last.Phase == want && last.Weight == 0
}

// loadFigures are serin's and the API server's figures over a window.
type loadFigures struct {
	Name    string
	Seconds float64
	// RSSMiB is serin's highest resident memory, CPU its CPU-seconds per
	// second.
	RSSMiB, CPU float64
	// API server requests per second, all clients, reads and writes.
	APIReads, APIWrites float64
	// serin's own requests per second (client-go's rest_client_requests_total).
	SerinReads, SerinWrites float64
	// Writes of serin and Canary status writes in the window, for per-step
	// figures, and the status writes refused on a conflict.
	SerinWriteCount, StatusWriteCount, StatusConflicts float64
	// WebhookP99 of serin's admission webhooks.
	WebhookP99 time.Duration
	// Queues: per controller, highest depth and work duration p50/p99.
	Queues []string
	// Writes are the API server's writes in the window by resource and
	// verb (every client), most first.
	Writes []string
}

func (l loadFigures) lines(steps int) []string {
	out := []string{
		fmt.Sprintf("%s (%.0fs): serin RSS max %.1f MiB, CPU %.3f s/s", l.Name, l.Seconds, l.RSSMiB, l.CPU),
		fmt.Sprintf("%s: API server requests/s (every client) reads %.2f writes %.2f; serin's own reads %.2f writes %.2f", l.Name,
			l.APIReads, l.APIWrites, l.SerinReads, l.SerinWrites),
	}
	if steps > 0 {
		out = append(out, fmt.Sprintf("%s: per release step: serin writes %.2f, Canary status writes %.2f (%d steps; %.0f status writes refused on a conflict)", l.Name,
			l.SerinWriteCount/float64(steps), l.StatusWriteCount/float64(steps), steps, l.StatusConflicts))
	}
	if l.WebhookP99 > 0 {
		out = append(out, fmt.Sprintf("%s: webhook p99 %dms", l.Name, l.WebhookP99.Milliseconds()))
	}
	for _, q := range l.Queues {
		out = append(out, fmt.Sprintf("%s: queue %s", l.Name, q))
	}
	if len(l.Writes) > 0 {
		out = append(out, fmt.Sprintf("%s: API writes by resource: %s", l.Name, strings.Join(l.Writes, ", ")))
	}
	return out
}

// loadBetween computes the figures of a window from its first and last
// scrapes (serin's and the API server's) and serin's scrapes in between.
func loadBetween(name string, s0, s1, a0, a1 scrape, samples []scrape) loadFigures {
	secs := s1.At.Sub(s0.At).Seconds()
	l := loadFigures{Name: name, Seconds: secs}
	l.RSSMiB = maxOf(append(samples, s0, s1), func(s scrape) float64 { return s.sum("process_resident_memory_bytes", nil) }) / (1 << 20)
	l.CPU = (s1.sum("process_cpu_seconds_total", nil) - s0.sum("process_cpu_seconds_total", nil)) / secs
	apiSecs := a1.At.Sub(a0.At).Seconds()
	writes := func(lb map[string]string) bool { return isWrite(lb["verb"]) }
	reads := func(lb map[string]string) bool { return !isWrite(lb["verb"]) }
	l.APIWrites = (a1.sum("apiserver_request_total", writes) - a0.sum("apiserver_request_total", writes)) / apiSecs
	l.APIReads = (a1.sum("apiserver_request_total", reads) - a0.sum("apiserver_request_total", reads)) / apiSecs
	sw := func(lb map[string]string) bool { return isWrite(lb["method"]) }
	sr := func(lb map[string]string) bool { return !isWrite(lb["method"]) }
	l.SerinWriteCount = s1.sum("rest_client_requests_total", sw) - s0.sum("rest_client_requests_total", sw)
	l.SerinWrites = l.SerinWriteCount / secs
	l.SerinReads = (s1.sum("rest_client_requests_total", sr) - s0.sum("rest_client_requests_total", sr)) / secs
	status := func(lb map[string]string) bool {
		return lb["resource"] == "canaries" && lb["subresource"] == "status" && isWrite(lb["verb"])
	}
	l.StatusWriteCount = a1.sum("apiserver_request_total", status) - a0.sum("apiserver_request_total", status)
	conflict := func(lb map[string]string) bool { return status(lb) && lb["code"] == "409" }
	l.StatusConflicts = a1.sum("apiserver_request_total", conflict) - a0.sum("apiserver_request_total", conflict)
	if p := histQuantile(0.99, s0.buckets("serin_admission_duration_seconds", nil), s1.buckets("serin_admission_duration_seconds", nil)); !math.IsNaN(p) {
		l.WebhookP99 = time.Duration(p * float64(time.Second))
	}
	l.Queues = queueLines(s0, s1, append(samples, s0, s1))
	l.Writes = writesByResource(a0, a1, 10)
	return l
}

// writesByResource are the n resources (with subresource and verb) the
// API server wrote most between two scrapes, with their counts.
func writesByResource(a0, a1 scrape, n int) []string {
	count := func(s scrape) map[string]float64 {
		out := map[string]float64{}
		for _, m := range s.Fams["apiserver_request_total"].GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if !isWrite(l["verb"]) {
				continue
			}
			k := l["resource"]
			if l["subresource"] != "" {
				k += "/" + l["subresource"]
			}
			out[k+" "+l["verb"]] += m.GetCounter().GetValue()
		}
		return out
	}
	before, after := count(a0), count(a1)
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			all = append(all, kv{k, d})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || all[i].v == all[j].v && all[i].k < all[j].k })
	var out []string
	for _, e := range all[:min(n, len(all))] {
		out = append(out, fmt.Sprintf("%s %.0f", e.k, e.v))
	}
	return out
}

// queueLines are controller-runtime's work-queue figures per queue.
func queueLines(s0, s1 scrape, samples []scrape) []string {
	names := map[string]bool{}
	for _, m := range s1.Fams["workqueue_depth"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "name" {
				names[l.GetValue()] = true
			}
		}
	}
	var out []string
	for name := range names {
		by := func(lb map[string]string) bool { return lb["name"] == name }
		depth := maxOf(samples, func(s scrape) float64 { return s.sum("workqueue_depth", by) })
		adds := s1.sum("workqueue_adds_total", by) - s0.sum("workqueue_adds_total", by)
		w0, w1 := s0.buckets("workqueue_work_duration_seconds", by), s1.buckets("workqueue_work_duration_seconds", by)
		q0, q1 := s0.buckets("workqueue_queue_duration_seconds", by), s1.buckets("workqueue_queue_duration_seconds", by)
		out = append(out, fmt.Sprintf("%-12s depth max %3.0f  adds %6.0f  work p50 %s p99 %s  wait p99 %s", name, depth, adds,
			secs(histQuantile(0.5, w0, w1)), secs(histQuantile(0.99, w0, w1)), secs(histQuantile(0.99, q0, q1))))
	}
	sort.Strings(out)
	return out
}

func secs(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	return (time.Duration(f * float64(time.Second))).Round(100 * time.Microsecond).String()
}

// report prints the figures as one block.
func report(lines ...[]string) string {
	var b strings.Builder
	for _, ls := range lines {
		for _, l := range ls {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}
