package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/serin-dev/serin/integration/harness"
)

// answer is one finished call.
type answer struct {
	at      time.Time
	version string
	failed  bool
}

// traffic sends a steady rate of UnaryCalls to the app through grpc-go's
// xDS client (bootstrapped to serin) and remembers the recent answers.
type traffic struct {
	mu      sync.Mutex
	answers []answer
}

// runTraffic calls target at rps until ctx ends.
func runTraffic(ctx context.Context, xdsAddress string, creds harness.XDSCredentials, nodeID, target string, rps int, tr *traffic) error {
	conn, err := harness.NewXDSClient(xdsAddress, nodeID, target, creds)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			var header, trailer metadata.MD
			_, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{}, grpc.Header(&header), grpc.Trailer(&trailer), grpc.WaitForReady(true))
			if ctx.Err() != nil || tr == nil {
				return
			}
			v := first(header.Get("x-version"), trailer.Get("x-version"))
			tr.add(answer{at: time.Now(), version: v, failed: err != nil})
		})
	}
}

func first(lists ...[]string) string {
	for _, l := range lists {
		if len(l) > 0 {
			return l[0]
		}
	}
	return "?"
}

func (t *traffic) add(a answer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.answers = append(t.answers, a)
	// Keep a minute.
	cut := 0
	for cut < len(t.answers) && a.at.Sub(t.answers[cut].at) > time.Minute {
		cut++
	}
	t.answers = t.answers[cut:]
}

// summary describes the answers of the last window: the share of each
// version and the share of failed calls, e.g. "1.0.0 80% | 2.0.0 20%,
// errors 6%".
func (t *traffic) summary(window time.Duration) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	since := time.Now().Add(-window)
	by := map[string]int{}
	total, failed := 0, 0
	for _, a := range t.answers {
		if a.at.Before(since) {
			continue
		}
		by[a.version]++
		total++
		if a.failed {
			failed++
		}
	}
	if total == 0 {
		return "no answers yet"
	}
	versions := make([]string, 0, len(by))
	for v := range by {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	parts := make([]string, 0, len(versions))
	for _, v := range versions {
		parts = append(parts, fmt.Sprintf("%s %3.0f%%", v, 100*float64(by[v])/float64(total)))
	}
	return fmt.Sprintf("%-24s errors %3.0f%%", strings.Join(parts, " | "), 100*float64(failed)/float64(total))
}
