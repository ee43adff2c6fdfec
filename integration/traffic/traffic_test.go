package traffic

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/serin-dev/serin/integration/harness"
)

// rpc is one call and who answered it.
type rpc struct {
	start, end time.Time
	version    string
	pod        string
	err        error
}

// tally counts calls by answering version and pod.
type tally struct {
	Total    int
	Versions map[string]int
	Pods     map[string]int
	Errors   int
	LastErr  error
}

func count(rpcs []rpc) tally {
	t := tally{Versions: map[string]int{}, Pods: map[string]int{}}
	for _, r := range rpcs {
		t.Total++
		if r.err != nil {
			t.Errors++
			t.LastErr = r.err
			continue
		}
		t.Versions[r.version]++
		t.Pods[r.pod]++
	}
	return t
}

func (t tally) String() string {
	return fmt.Sprintf("total=%d versions=%v errors=%d pods=%d lastErr=%v", t.Total, t.Versions, t.Errors, len(t.Pods), t.LastErr)
}

// client is a grpc-go channel through grpc-go's own xDS client,
// bootstrapped to serin, to the release's podinfo service.
func (r *release) client(node string) *grpc.ClientConn {
	r.t.Helper()
	conn := harness.XDSClient(r.t, r.e.s.XDSAddress(), node+"-"+r.ns, "podinfo."+r.ns+":9999")
	// The first call waits for the channel's xDS configuration.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true)); err != nil {
		r.t.Fatalf("first call through xDS: %v", err)
	}
	return conn
}

// sender makes n calls with the given metadata pairs through one xDS
// client and tallies who answered.
type sender func(n int, md ...string) tally

// grpcGo is a sender through grpc-go's xDS client (release.client).
func grpcGo(r *release, node string) sender {
	conn := r.client(node)
	return func(n int, md ...string) tally { return send(conn, n, md...) }
}

// ccore is a sender through gRPC C-core's xDS client (Debian's
// python3-grpcio): one channel in a process of its own, bootstrapped to
// serin like the grpc-go clients, answering every measurement.
func ccore(r *release, node string) sender {
	c := harness.NewCCoreClient(r.t, r.e.s.XDSAddress(), node+"-"+r.ns, "podinfo."+r.ns+":9999")
	return func(n int, md ...string) tally {
		r.t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		tl, err := c.Send(ctx, n, md...)
		if err != nil {
			r.t.Fatal(err)
		}
		return tally{Total: n, Versions: tl.Versions, Pods: tl.Pods, Errors: tl.Errors, LastErr: tl.LastErr}
	}
}

// call makes one fail-fast UnaryCall with the given metadata pairs.
func call(ctx context.Context, c testgrpc.TestServiceClient, md []string) rpc {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if len(md) > 0 {
		cctx = metadata.AppendToOutgoingContext(cctx, md...)
	}
	var header metadata.MD
	r := rpc{start: time.Now()}
	_, r.err = c.UnaryCall(cctx, &testgrpc.SimpleRequest{}, grpc.Header(&header))
	r.end = time.Now()
	if v := header.Get("x-version"); len(v) > 0 {
		r.version = v[0]
	}
	if p := header.Get("x-pod"); len(p) > 0 {
		r.pod = p[0]
	}
	return r
}

const workers = 16

// send makes n calls from 8 goroutines.
func send(conn *grpc.ClientConn, n int, md ...string) tally {
	c := testgrpc.NewTestServiceClient(conn)
	out := make([]rpc, n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				out[i] = call(context.Background(), c, md)
			}
		})
	}
	wg.Wait()
	return count(out)
}

// load keeps calls flowing until stopped, recording every one.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	rpcs []rpc
}

// startLoad runs n goroutines of back-to-back calls, at most 20 minutes'
// worth, each pausing pause between calls.
func startLoad(conn *grpc.ClientConn, n int, pause time.Duration, md ...string) *load {
	l := &load{stop: make(chan struct{})}
	c := testgrpc.NewTestServiceClient(conn)
	end := time.Now().Add(20 * time.Minute)
	for range n {
		l.wg.Go(func() {
			for time.Now().Before(end) {
				select {
				case <-l.stop:
					return
				default:
				}
				r := call(context.Background(), c, md)
				l.mu.Lock()
				l.rpcs = append(l.rpcs, r)
				l.mu.Unlock()
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		})
	}
	return l
}

// Stop ends the load and returns every call, in order of start.
func (l *load) Stop() []rpc {
	close(l.stop)
	l.wg.Wait()
	sort.Slice(l.rpcs, func(i, j int) bool { return l.rpcs[i].start.Before(l.rpcs[j].start) })
	return l.rpcs
}

// checkShare asserts that the canary's share of the calls is within 4
// binomial standard deviations of weight (exactly 0 or all at 0 and 100),
// and prints it as a FIGURE.
func checkShare(t *testing.T, name string, weight int, tl tally) {
	t.Helper()
	n, k := tl.Total-tl.Errors, tl.Versions[v2]
	p := float64(weight) / 100
	sigma := math.Sqrt(float64(n) * p * (1 - p))
	dev := math.Abs(float64(k) - float64(n)*p)
	sigmas := 0.0
	if sigma > 0 {
		sigmas = dev / sigma
	}
	t.Logf("FIGURE %s_weight_%d_canary_share=%.4f rpcs=%d canary=%d errors=%d deviation_sigmas=%.2f",
		name, weight, float64(k)/math.Max(1, float64(n)), n, k, tl.Errors, sigmas)
	if tl.Errors > 0 {
		t.Errorf("weight %d: %d of %d calls failed, last: %v", weight, tl.Errors, tl.Total, tl.LastErr)
	}
	if other := n - k - tl.Versions[v1]; other != 0 {
		t.Errorf("weight %d: %d calls answered by neither track: %v", weight, other, tl.Versions)
	}
	if dev > 4*sigma {
		t.Errorf("weight %d: canary answered %d of %d calls (%.2f%%): %.1f standard deviations from the weight, more than 4",
			weight, k, n, 100*float64(k)/float64(n), sigmas)
	}
}
