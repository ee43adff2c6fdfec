package analysis

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// load sends a steady rate of UnaryCalls through a grpc-go xDS channel, one
// goroutine per call (a slow canary does not slow the rate down), and
// tallies the answers by the version the pod reported.
type load struct {
	mu sync.Mutex
	// ok and failed count calls by x-version ("" when none came back).
	ok, failed map[string]int
	// first is when each version first answered.
	first map[string]time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startLoad(t *testing.T, conn *grpc.ClientConn, rps int) *load {
	l := &load{ok: map[string]int{}, failed: map[string]int{}, first: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	client := testgrpc.NewTestServiceClient(conn)
	every := time.Second / time.Duration(rps)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				defer ccancel()
				var header, trailer metadata.MD
				_, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{}, grpc.Header(&header), grpc.Trailer(&trailer), grpc.WaitForReady(true))
				if ctx.Err() != nil {
					return
				}
				v := ""
				if h := header.Get("x-version"); len(h) > 0 {
					v = h[0]
				} else if h := trailer.Get("x-version"); len(h) > 0 {
					v = h[0]
				}
				now := time.Now()
				l.mu.Lock()
				defer l.mu.Unlock()
				if err != nil {
					l.failed[v]++
				} else {
					l.ok[v]++
				}
				if _, seen := l.first[v]; !seen {
					l.first[v] = now
				}
			}()
		}
	}()
	t.Cleanup(l.stop)
	return l
}

// stop ends the load and waits for the calls in flight.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// counts returns copies of the tallies.
func (l *load) counts() (ok, failed map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok, failed = map[string]int{}, map[string]int{}
	for k, v := range l.ok {
		ok[k] = v
	}
	for k, v := range l.failed {
		failed[k] = v
	}
	return ok, failed
}

// firstSeen is when version first answered (zero if never).
func (l *load) firstSeen(version string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first[version]
}

// during counts the calls each version answered (ok or failed)
// while f ran.
func (l *load) during(f func()) map[string]int {
	ok0, failed0 := l.counts()
	f()
	ok1, failed1 := l.counts()
	out := map[string]int{}
	for k, v := range ok1 {
		out[k] += v - ok0[k]
	}
	for k, v := range failed1 {
		out[k] += v - failed0[k]
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}
