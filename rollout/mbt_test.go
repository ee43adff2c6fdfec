package rollout

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// A seeded, model-based test of Step. Each sequence draws a Canary
// (mbt_config_test.go) and a list of timed events (mbt_event_test.go):
// new revisions, replaces and scaling, gates opening and closing, verdicts
// of every kind, manual actions, pause and resume, NACKs, stalled proxies,
// restarts and crashes between the status write and the actions, deletion
// and opt-out. It runs them against a simulated cluster (the hold webhook,
// the Deployment controller, the canary copy and the data plane in
// mbt_world_test.go; serin's reconcile loop and queue in
// mbt_engine_test.go) on a virtual clock, checking the invariants of
// mbt_check_test.go after every reconcile and every tick. After the last
// event the inputs stay fixed and the release must settle within
// simLivenessIntervals intervals.
//
// A failure is shrunk by delta debugging to a short event list that still
// breaks the same invariant in the same class (preferring one that breaks
// nothing else), printed with its seed and as an entry for the regression
// table of mbt_regress_test.go.
//
//	go test ./rollout/ -run 'TestModel$' -v                              # CI size
//	go test ./rollout/ -run 'TestModel$' -v -mbt.n=100000                # long run
//	go test ./rollout/ -run 'TestModel$' -v -seed=42 -mbt.n=1 -mbt.trace # one sequence, traced
//	go test ./rollout/ -run 'TestModelRegressions' -v -mbt.trace         # the regressions, traced
var (
	flagSeed   = flag.Uint64("seed", 0, "model-based test: seed of the first sequence (0: a fixed seed for the default run, from the clock with -mbt.n); sequence i uses seed+i")
	flagMBTN   = flag.Int("mbt.n", 0, "model-based test: number of sequences (0: 3000 with -short, 5000 without)")
	flagMBTMax = flag.Int("mbt.shrink", 500, "model-based test: most replays spent shrinking one failure")
	flagTrace  = flag.Bool("mbt.trace", false, "model-based test: with -mbt.n=1, print every event and reconcile of the sequence")
)

// simFailure is a violation key with the failing sequences of the lowest
// seeds (up to simCandidates of them) and how many sequences broke it.
type simFailure struct {
	cands []simCandidate
	count int
}

type simCandidate struct {
	seed   uint64
	cfg    simConfig
	events []simEvent
	v      *simViolation
}

// simCandidates is how many failing sequences of a key are shrunk; the
// shortest result is reported.
const simCandidates = 3

func (f *simFailure) add(c simCandidate) {
	f.count++
	f.cands = append(f.cands, c)
	slices.SortFunc(f.cands, func(a, b simCandidate) int { return cmp.Compare(a.seed, b.seed) })
	f.cands = f.cands[:min(len(f.cands), simCandidates)]
}

// sequence is the configuration and events of one seed.
func sequence(seed uint64) (simConfig, []simEvent) {
	r := rand.New(rand.NewPCG(seed, 0x5e41))
	cfg := randomConfig(r)
	return cfg, randomEvents(r, cfg)
}

// runSequence runs one sequence and returns the violations found: any
// number of action-dropped ones, and at most one other, the last.
func runSequence(cfg simConfig, seed uint64, events []simEvent) []*simViolation {
	return runTraced(cfg, seed, events, nil)
}

// runTraced is runSequence telling trace (when not nil) what happens.
func runTraced(cfg simConfig, seed uint64, events []simEvent, trace io.Writer) []*simViolation {
	w := newSimWorld(cfg, seed)
	w.trace = trace
	for w.status.Phase != v1alpha1.PhaseInitialized && !w.check.stop && w.tick < 10 {
		w.advance()
	}
	if !w.check.stop && w.status.Phase != v1alpha1.PhaseInitialized {
		w.fail("liveness", "not initialized: %s", w.state())
	}
	w.check.t0 = w.tick
	last := 0
	if len(events) > 0 {
		last = events[len(events)-1].At
	}
	live := simLiveness{start: w.tick + last}
	for i := 0; !w.check.stop; {
		for ; i < len(events) && w.check.t0+events[i].At <= w.tick+1; i++ {
			w.apply(events[i])
		}
		w.advance()
		if w.tick > live.start && live.done(w) {
			break
		}
	}
	return w.check.vs
}

// find returns the violation of vs with key k (nil if none).
func find(vs []*simViolation, k string) *simViolation {
	for _, v := range vs {
		if v.key() == k {
			return v
		}
	}
	return nil
}

// defaultSeed is the first seed of the default run.
const defaultSeed = 20261205

func TestModel(t *testing.T) {
	n := *flagMBTN
	base := *flagSeed
	if base == 0 && n > 0 {
		// An explicit run explores new sequences.
		base = uint64(time.Now().UnixNano())
	}
	if base == 0 {
		// The default run (make test, CI) is the same every time, so a red
		// run always means a change broke a sequence that passed before.
		base = defaultSeed
	}
	if n == 0 {
		n = 5000
		if testing.Short() {
			n = 3000
		}
	}
	if *flagTrace && n == 1 {
		cfg, events := sequence(base)
		var b strings.Builder
		fmt.Fprintf(&b, "config: %s\n", cfg)
		runTraced(cfg, base, events, &b)
		t.Log("trace of seed ", base, ":\n", b.String())
	}
	start := time.Now()
	failures := runSequences(base, n)
	t.Logf("model: %d sequences (seeds %d..%d) in %s; liveness bound %d intervals", n, base, base+uint64(n)-1,
		time.Since(start).Round(time.Millisecond), simLivenessIntervals)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range failures {
			if !yield(k) {
				return
			}
		}
	})
	for i, k := range keys {
		f := failures[k]
		t.Errorf("model violation %d/%d (in %d of %d sequences): %s", i+1, len(keys), f.count, n, f.report(*flagMBTMax))
	}
}

// runSequences runs n sequences from seed base on every core and keeps,
// per violation key, the failing sequence of the lowest seed.
func runSequences(base uint64, n int) map[string]*simFailure {
	var (
		next     atomic.Int64
		mu       sync.Mutex
		failures = map[string]*simFailure{}
		wg       sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				seed := base + uint64(i)
				cfg, events := sequence(seed)
				vs := runSequence(cfg, seed, events)
				mu.Lock()
				for _, v := range vs {
					if failures[v.key()] == nil {
						failures[v.key()] = &simFailure{}
					}
					failures[v.key()].add(simCandidate{seed: seed, cfg: cfg, events: events, v: v})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failures
}

// report shrinks the failure's candidates and prints the best result: one
// that breaks no other invariant if there is one, else the shortest.
func (f *simFailure) report(budget int) string {
	var best simCandidate
	bestAlone := false
	for i, c := range f.cands {
		alone := len(runSequence(c.cfg, c.seed, c.events)) == 1
		c.events, c.v = shrink(c.cfg, c.seed, c.events, c.v, alone, budget)
		if i == 0 || alone && !bestAlone || alone == bestAlone && len(c.events) < len(best.events) {
			best, bestAlone = c, alone
		}
	}
	return best.String()
}

func (c simCandidate) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", c.v.key())
	fmt.Fprintf(&b, "  seed %d (whole sequence: go test ./rollout/ -run 'TestModel$' -v -seed=%d -mbt.n=1 -mbt.trace)\n", c.seed, c.seed)
	fmt.Fprintf(&b, "  config: %s\n", c.cfg)
	fmt.Fprintf(&b, "  shrunk to %d events:\n", len(c.events))
	for _, e := range c.events {
		fmt.Fprintf(&b, "    %s\n", e)
	}
	fmt.Fprintf(&b, "  then at t=%ds: %s\n", c.v.At, c.v.Detail)
	fmt.Fprintf(&b, "  regression entry:\n    {name: %q, broke: %q, seed: %d,\n      config: %q,\n      events: []string{",
		strings.ReplaceAll(c.v.key(), " ", "_"), c.v.Invariant, c.seed, c.cfg.String())
	for i, e := range c.events {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", e.String())
	}
	b.WriteString("}},")
	return b.String()
}

// shrink is delta debugging (ddmin) over the event list: it removes
// chunks of events, then single events, as long as the sequence still
// breaks the same invariant in the same class (and, when alone is set,
// no other), within budget replays.
func shrink(cfg simConfig, seed uint64, events []simEvent, v *simViolation, alone bool, budget int) ([]simEvent, *simViolation) {
	runs := 0
	fails := func(ev []simEvent) *simViolation {
		if runs >= budget {
			return nil
		}
		runs++
		vs := runSequence(cfg, seed, ev)
		if alone && len(vs) != 1 {
			return nil
		}
		return find(vs, v.key())
	}
	if got := fails(nil); got != nil {
		return nil, got
	}
	for n := 2; len(events) >= 2; {
		chunk := (len(events) + n - 1) / n
		reduced := false
		for at := 0; at < len(events) && !reduced; at += chunk {
			cand := slices.Concat(events[:at], events[min(at+chunk, len(events)):])
			if got := fails(cand); got != nil {
				events, v, reduced = cand, got, true
				n = max(n-1, 2)
			}
		}
		if !reduced {
			if n >= len(events) {
				break
			}
			n = min(2*n, len(events))
		}
	}
	return events, v
}
