package server

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
)

// TestSubIndexMatchesAScan: after random subscriptions, resubscriptions
// and closes, the streams the index offers for a question, once each, are
// exactly the streams a scan of every stream finds subscribed.
func TestSubIndexMatchesAScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr := s.tracker
	names := func(n int) []string {
		var out []string
		for range n {
			out = append(out, fmt.Sprintf("serin/ns/svc%d/80", rng.IntN(20)))
		}
		return out
	}
	subscribe := func(st *streamState) {
		st.mu.Lock()
		for k := range st.types {
			st.types[k] = nil
		}
		for range rng.IntN(3) {
			k := kind(rng.IntN(int(numKinds)))
			wild := rng.IntN(8) == 0
			var sub stream.Subscription
			if wild {
				sub = stream.NewSotwSubscription(nil, true)
			} else {
				sub = stream.NewSotwSubscription(names(1+rng.IntN(3)), false)
			}
			st.types[k] = newTypeState(sub, time.Now())
		}
		st.mu.Unlock()
		tr.reindex(st)
	}
	for i := range 2000 {
		switch op := rng.IntN(10); {
		case op < 5 || len(tr.streams) == 0:
			st := &streamState{key: streamKey{delta: i%2 == 0, id: int64(i)}}
			tr.mu.Lock()
			tr.streams[st.key] = st
			tr.mu.Unlock()
			subscribe(st)
		case op < 8:
			for _, st := range tr.streams {
				subscribe(st)
				break
			}
		default:
			for k := range tr.streams {
				tr.close(k, nil)
				break
			}
		}
		asked := names(1 + rng.IntN(3))
		var want, got []streamKey
		for k, st := range tr.streams {
			st.mu.Lock()
			for _, ts := range st.types {
				if ts != nil && slices.ContainsFunc(asked, ts.subscribed) {
					want = append(want, k)
					break
				}
			}
			st.mu.Unlock()
		}
		tr.mu.RLock()
		tr.index.eachCandidate(asked, func(st *streamState) {
			st.mu.Lock()
			defer st.mu.Unlock()
			for _, ts := range st.types {
				if ts != nil && slices.ContainsFunc(asked, ts.subscribed) {
					got = append(got, st.key)
					break
				}
			}
		})
		tr.mu.RUnlock()
		order := func(a, b streamKey) int {
			if a.id != b.id {
				return int(a.id - b.id)
			}
			return 0
		}
		slices.SortFunc(want, order)
		slices.SortFunc(got, order)
		if !slices.Equal(got, want) {
			t.Fatalf("op %d, asked %v: index offers %v, a scan finds %v", i, asked, got, want)
		}
	}
}
