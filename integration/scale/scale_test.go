package scale

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/integration/prometheus"
)

// TestScale runs the scenario at the size SERIN_SCALE names: it asserts
// that every release ends as designed and that the data plane is back on
// stable, and logs the figures.
func TestScale(t *testing.T) {
	sz := currentSize()
	c := cluster.Get(t)
	began := time.Now()
	f := setup(t, c, sz)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	t.Logf("setup: %d apps (%d pods) initialized, observers connected in %s", sz.Apps, sz.Apps*sz.Replicas, time.Since(began).Round(time.Second))

	sm := startSampler(ctx, f.s, time.Second)
	time.Sleep(10 * time.Second) // let the start settle
	idle := f.window(ctx, sm, "idle", func() { time.Sleep(time.Duration(sz.IdleSeconds) * time.Second) })

	together, stream := f.apps[:sz.Together], f.apps[sz.Together:sz.Together+sz.streamReleases()]
	wave1 := f.window(ctx, sm, "burst: together", func() {
		if err := parallel(16, together, func(a *app) error { return f.release(ctx, a) }); err != nil {
			t.Fatal(err)
		}
		f.waitAll(held(together), sz.WaveTimeout, "releases started together end", f.phaseIs(v1alpha1.PhaseSucceeded, v1alpha1.PhaseFailed))
	})
	wave2 := f.window(ctx, sm, "burst: stream", func() {
		f.stream(ctx, stream)
		f.waitAll(held(stream), sz.WaveTimeout, "streamed releases end", f.phaseIs(v1alpha1.PhaseSucceeded, v1alpha1.PhaseFailed))
	})

	// The data plane is back on stable everywhere.
	released := f.apps[:sz.Together+sz.streamReleases()]
	f.waitAll(held(released), time.Minute, "observers back on stable", func(a *app) bool {
		seen := a.obs.all()
		return len(seen) > 0 && seen[len(seen)-1].Weight == 0 && seen[len(seen)-1].Stable == 100
	})
	w1, w2 := f.figures("together", together), f.figures("stream", stream)
	for _, a := range released {
		if a.unheld {
			t.Errorf("%s: the change was admitted without serin's hold (the webhook timed out and failed open)", a.key())
			continue
		}
		if last, _ := f.watch.last(a.key()); !endedAsDesigned(a, last) {
			t.Errorf("%s (designed to fail: %v) ended %s at weight %d", a.key(), a.Failing, last.Phase, last.Weight)
		}
	}
	t.Logf("scale %q: %d apps × %d pods, %d released together, %d streamed at %d/s (%d designed to fail), interval %s, serin race detector %v, wall %s\n%s",
		sz.Name, sz.Apps, sz.Replicas, sz.Together, sz.streamReleases(), sz.PerSecond, failingCount(stream), interval, raceEnabled,
		time.Since(began).Round(time.Second),
		report(w1.lines(), w2.lines(), idle.lines(0), wave1.lines(w1.Steps), wave2.lines(w2.Steps)))
	t.Logf("idle per Canary: %.4f API requests/s by serin (%d Canaries)", (idle.SerinReads+idle.SerinWrites)/float64(sz.Apps), sz.Apps)
}

// held are the apps whose release serin held (and so runs).
func held(apps []*app) []*app {
	var out []*app
	for _, a := range apps {
		if !a.unheld {
			out = append(out, a)
		}
	}
	return out
}

func failingCount(apps []*app) int {
	n := 0
	for _, a := range apps {
		if a.Failing {
			n++
		}
	}
	return n
}

// figures are a wave's latencies and correctness.
func (f *fleet) figures(name string, apps []*app) waveFigures {
	w := waveFigures{Name: name}
	for _, a := range apps {
		last, _ := f.watch.last(a.key())
		w.add(timesOf(f.watch.of(a.key()), a.obs.all(), f.copies.of(a.key()), a.applied, a.rev), !a.unheld && endedAsDesigned(a, last), a.unheld)
	}
	return w
}

// window runs fn and measures serin and the API server while it runs.
func (f *fleet) window(ctx context.Context, sm *sampler, name string, fn func()) loadFigures {
	f.t.Helper()
	s0, a0 := f.scrapes(ctx)
	fn()
	s1, a1 := f.scrapes(ctx)
	return loadBetween(name, s0, s1, a0, a1, sm.between(s0.At, s1.At))
}

func (f *fleet) scrapes(ctx context.Context) (serin, api scrape) {
	f.t.Helper()
	s, err := scrapeSerin(f.s)
	if err != nil {
		f.t.Fatal(err)
	}
	a, err := scrapeAPIServer(ctx, f.cs)
	if err != nil {
		f.t.Fatal(err)
	}
	return s, a
}

// stream starts PerSecond releases every second; the ones designed to
// fail get traffic from their grpc-go client while they run.
func (f *fleet) stream(ctx context.Context, apps []*app) {
	f.t.Helper()
	tick := time.NewTicker(time.Second / time.Duration(f.sz.PerSecond))
	defer tick.Stop()
	var wg sync.WaitGroup
	errs := make(chan error, len(apps))
	for _, a := range apps {
		<-tick.C
		wg.Go(func() {
			if err := f.release(ctx, a); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.t.Fatal(err)
	}
}

// load calls an app 20 times a second through its grpc-go client, from
// the start of its release until the release has ended (or ctx has).
func (f *fleet) load(ctx context.Context, a *app) {
	client := testgrpc.NewTestServiceClient(a.conn)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	progressed := false
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if st, ok := f.watch.last(a.key()); ok {
			progressed = progressed || st.Phase == v1alpha1.PhaseProgressing
			if progressed && (st.Phase == v1alpha1.PhaseFailed || st.Phase == v1alpha1.PhaseSucceeded) {
				return
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _ = client.UnaryCall(cctx, &testgrpc.SimpleRequest{})
		cancel()
	}
}

// setup makes the namespaces, installs serin, Prometheus and podsim,
// creates the apps, waits for every Canary to be Initialized and connects
// an observer per app (and a grpc-go client per app designed to fail).
func setup(t *testing.T, c *cluster.Cluster, sz size) *fleet {
	t.Helper()
	var namespaces []string
	for range sz.Namespaces {
		namespaces = append(namespaces, c.Namespace(t))
	}
	failNS := c.Namespace(t)
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := harness.Client(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	prom := prometheus.Run(t, c, prometheus.Options{Namespaces: []string{failNS}, ScrapeInterval: 5 * time.Second})
	harness.RunPodsim(t, c, failNS)
	pprof, err := cluster.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	s := harness.Install(t, c, harness.Options{PrometheusAddress: prom.URL,
		ExtraArgs: append([]string{"--log-level=info", fmt.Sprintf("--pprof-address=127.0.0.1:%d", pprof[0])}, sz.SerinArgs...)})
	t.Logf("serin pprof on http://127.0.0.1:%d/debug/pprof/", pprof[0])
	if err := prom.SetTokenTargets("serin", s.MetricsToken(), fmt.Sprintf("127.0.0.1:%d", s.Ports.Metrics)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &fleet{t: t, sz: sz, c: c, cs: cs, cl: cl, s: s, apps: newApps(sz, namespaces, failNS), watch: watchCanaries(ctx, cl), copies: watchCopies(ctx, cl)}
	if err := f.create(ctx); err != nil {
		t.Fatal(err)
	}
	f.waitAll(f.apps, time.Duration(sz.Apps)*time.Second+2*time.Minute, "Canaries initialized", f.phaseIs(v1alpha1.PhaseInitialized))
	f.observe(ctx, append(namespaces, failNS))
	f.waitAll(f.apps, 2*time.Minute, "observers served", func(a *app) bool { return len(a.obs.all()) > 0 })
	if t.Failed() {
		t.FailNow()
	}
	for _, a := range f.apps {
		if a.Failing {
			conn := harness.XDSClient(t, s.XDSAddress(), "client-"+a.Name, fmt.Sprintf("%s.%s:9999", a.Name, a.NS))
			if tally := harness.Send(ctx, conn, 8); tally.Errors > 0 {
				t.Fatalf("%s before its release: %+v", a.key(), tally)
			}
			a.conn = conn
		}
	}
	return f
}

// observe connects one raw ADS stream per app, the streams of a
// namespace over one connection.
func (f *fleet) observe(ctx context.Context, namespaces []string) {
	f.t.Helper()
	conns := map[string]*grpc.ClientConn{}
	for _, ns := range namespaces {
		cc, err := grpc.NewClient(f.s.XDSAddress(), harness.XDSDialOption(f.t, f.s.XDSAddress(), ns))
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(func() { cc.Close() })
		conns[ns] = cc
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	f.t.Cleanup(func() { cancel(); wg.Wait() })
	for _, a := range f.apps {
		a.obs = &observer{resource: fmt.Sprintf("serin/%s/%s/9999", a.NS, a.Name)}
		wg.Go(func() { a.obs.run(ctx, conns[a.NS], "observer-"+a.Name) })
	}
}
