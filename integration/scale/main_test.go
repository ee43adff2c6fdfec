// Package scale is serin at scale on the real local cluster: many opted-in
// Deployments with kwok pods, a raw ADS observer per release standing in
// for its proxies (grpc-go xDS clients only for the releases designed to
// fail, whose analysis needs real traffic and load reports), Prometheus
// scraping serin and the failing releases' pods, a wave of releases started
// together and then a steady stream of releases with a tenth failing.
//
// SERIN_SCALE picks the size: unset or "ci" is the small version that runs
// in make test and asserts only correctness (every release ends Succeeded
// or Failed as designed, and the data plane is back on stable); "full" is
// make bench-scale, and "wave" its idle fleet and first wave only
// (SERIN_SCALE=wave make bench-scale). All print the figures (latencies,
// serin's memory and CPU, API requests, webhook and work-queue figures);
// no figure is asserted.
package scale

import (
	"os"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

func TestMain(m *testing.M) {
	cluster.Main(m, cluster.Options{Nodes: currentSize().Nodes})
}

// size is the shape of a run.
type size struct {
	Name string
	// Apps is the number of opted-in Deployments, Replicas their pods.
	Apps, Replicas int
	// Namespaces the apps are spread over (the apps designed to fail live
	// in one more, the only one podsim serves).
	Namespaces int
	// Together is the number of releases started at once (within 10 s).
	Together int
	// PerSecond releases are started every second for StreamSeconds
	// after the first wave has finished; every FailEvery-th fails.
	PerSecond, StreamSeconds, FailEvery int
	// IdleSeconds is how long serin's idle load is measured.
	IdleSeconds int
	// Nodes are kwok nodes (250 pods each).
	Nodes int
	// WaveTimeout bounds each wave of releases.
	WaveTimeout time.Duration
	// SerinArgs are extra flags of serin controller.
	SerinArgs []string
}

// sizes are the runs: make bench-scale's (full), make test's (ci), and
// full's first half (wave).
var sizes = map[string]size{
	// Ten releases a second write about 300 times a second (Canary
	// status, events, the canary copies): above serin's default client
	// limit of 50, so the full run raises it.
	"full": {Name: "full", Apps: 1000, Replicas: 3, Namespaces: 10, Together: 100, PerSecond: 10, StreamSeconds: 60, FailEvery: 10,
		IdleSeconds: 60, Nodes: 20, WaveTimeout: 15 * time.Minute, SerinArgs: []string{"--kube-api-qps=400", "--kube-api-burst=800"}},
	// wave is full without the stream: the idle fleet and the releases
	// started together, in about a third of full's time.
	"wave": {Name: "wave", Apps: 1000, Replicas: 3, Namespaces: 10, Together: 100, PerSecond: 10, StreamSeconds: 0, FailEvery: 10,
		IdleSeconds: 60, Nodes: 20, WaveTimeout: 15 * time.Minute, SerinArgs: []string{"--kube-api-qps=400", "--kube-api-burst=800"}},
	"ci": {Name: "ci", Apps: 100, Replicas: 3, Namespaces: 4, Together: 20, PerSecond: 3, StreamSeconds: 10, FailEvery: 10,
		IdleSeconds: 20, Nodes: 3, WaveTimeout: 5 * time.Minute},
}

// currentSize is the size SERIN_SCALE names (default ci).
func currentSize() size {
	if s, ok := sizes[os.Getenv("SERIN_SCALE")]; ok {
		return s
	}
	return sizes["ci"]
}

// streamReleases is how many releases the stream starts.
func (s size) streamReleases() int { return s.PerSecond * s.StreamSeconds }

// failing reports whether the app with this index is designed to fail:
// every FailEvery-th release of the stream.
func (s size) failing(i int) bool {
	j := i - s.Together
	return j >= 0 && j < s.streamReleases() && j%s.FailEvery == s.FailEvery-1
}
