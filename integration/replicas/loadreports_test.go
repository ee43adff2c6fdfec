package replicas

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/xds/server"
)

// loadReportsCanary is a release judged on load reports only (no
// Prometheus) by the comparative judge, whose verdict carries the counts
// of the whole release; small steps and a long deadline keep it going
// through the test, and each check between bursts of traffic is "no data"
// with the release's counts so far.
const loadReportsCanary = `apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: podinfo, namespace: %[1]s}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  progressDeadlineSeconds: 900
  service: {port: 9999, appProtocol: grpc}
  loadReports: {enabled: true}
  judge: {kind: Comparative}
  analysis: {interval: 2s, threshold: 5, stepWeight: 5, maxWeight: 50}
`

var releaseCount = regexp.MustCompile(`error-rate/(canary|stable)=[^;]* n=(\d+)`)

// releaseRequests is the canary's and stable's requests of the whole
// release in a verdict.
func releaseRequests(verdict string) int {
	n := 0
	for _, m := range releaseCount.FindAllStringSubmatch(verdict, -1) {
		v, _ := strconv.Atoi(m[2])
		n += v
	}
	return n
}

// TestLoadReportsOfEveryReplicaCount: proxies report load to both
// replicas; the leader's verdict counts every request, and after the
// leader is killed and started again the release's counts are all still
// there and go on growing.
func TestLoadReportsOfEveryReplicaCount(t *testing.T) {
	c := cluster.Get(t)
	ns := c.Namespace(t)
	harness.RunPodsim(t, c, ns)

	leader := harness.Install(t, c, harness.Options{ExtraArgs: []string{"--leader-elect=true"}})
	waitLog(t, leader, "Successfully acquired lease")
	follower := leader.Replica(t)

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	apply := func(version string) {
		t.Helper()
		deploy := manifests[strings.Index(manifests, "---"):]
		if _, err := c.Kubectl(ctx, fmt.Sprintf(loadReportsCanary+deploy, ns, version), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}
	status := func() string {
		out, _ := c.Kubectl(ctx, "", "get", "canary", "podinfo", "-n", ns, "-o",
			`jsonpath={.status.phase}|{.status.canaryWeight}|{.status.analysisStartTime}|{.status.lastVerdict}`)
		return out
	}
	waitFor := func(what string, cond func(string) bool) string {
		t.Helper()
		until := time.Now().Add(2 * time.Minute)
		for time.Now().Before(until) && ctx.Err() == nil {
			if s := status(); cond(s) {
				return s
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%s: last status %q", what, status())
		return ""
	}
	apply("6.0.0")
	waitFor("initialized", func(s string) bool { return strings.HasPrefix(s, string(v1alpha1.PhaseInitialized)) })

	target := "podinfo." + ns + ":9999"
	onLeader := harness.XDSClient(t, leader.XDSAddress(), "leader-client", target)
	onFollower := harness.XDSClient(t, follower.XDSAddress(), "follower-client", target)
	apply("6.0.1")
	waitFor("analysis started", func(s string) bool {
		f := strings.Split(s, "|")
		return len(f) == 4 && f[0] == string(v1alpha1.PhaseProgressing) && f[1] != "0" && f[2] != ""
	})

	sent := 0
	burst := func(n int) {
		t.Helper()
		for _, tc := range []struct {
			name  string
			tally harness.Tally
		}{
			{"leader", harness.Send(ctx, onLeader, n)},
			{"follower", harness.Send(ctx, onFollower, n)},
		} {
			if tc.tally.Errors > 0 {
				t.Fatalf("requests through the %s's client failed: %+v", tc.name, tc.tally)
			}
		}
		sent += 2 * n
	}
	countsAll := func(what string) string {
		t.Helper()
		return waitFor(what, func(s string) bool { return releaseRequests(s) == sent })
	}

	burst(100)
	s := countsAll("the verdict counts the requests sent to both replicas")
	t.Logf("before the restart: %d requests sent, verdict %q", sent, s)

	// Every count the leader received is in its Lease before it is killed
	// (what arrived in its last second could otherwise be lost).
	leaderLease := "serin-load-serin-" + strconv.Itoa(leader.Ports.Webhook)
	cl := fmt.Sprintf("serin/%s/podinfo/9999", ns)
	waitLease(ctx, t, c, leaderLease, cl, 100)

	writesBefore := leaseWrites(t, follower)
	leader.Kill()
	killedAt := time.Now()
	if err := leader.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("leader killed and started again in %s", time.Since(killedAt).Round(time.Millisecond))

	// No verdict after the restart counts fewer requests than before it.
	before := sent
	lowest := before
	seen := 0
	burst(100)
	until := time.Now().Add(2 * time.Minute)
	for {
		s = status()
		n := releaseRequests(s)
		if strings.HasPrefix(s, string(v1alpha1.PhaseProgressing)) && n > 0 {
			lowest = min(lowest, n)
			seen++
		}
		if n == sent {
			break
		}
		if time.Now().After(until) || ctx.Err() != nil {
			t.Fatalf("after the restart the verdict counts %d of %d requests (at least %d before it; lowest since %d): %q", n, sent, before, lowest, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if lowest < before {
		t.Fatalf("after the restart a verdict counted %d requests, fewer than the %d counted before", lowest, before)
	}
	if !strings.HasPrefix(s, string(v1alpha1.PhaseProgressing)) {
		t.Errorf("the release is no longer in progress: %q", s)
	}
	t.Logf("after the restart: %d requests sent, verdict %q (%d statuses seen, none below %d)", sent, s, seen, before)

	elapsed := time.Since(killedAt).Seconds()
	writes := leaseWrites(t, follower) - writesBefore
	size, _ := c.Kubectl(ctx, "", "get", "lease", "-n", harness.Namespace, leaderLease, "-o", `jsonpath={.metadata.annotations.serin\.dev/xds-load}`)
	t.Logf("FIGURE load_lease_writes_per_second_follower=%.2f", writes/elapsed)
	t.Logf("FIGURE load_lease_bytes_one_cluster=%d", len(size))
}

// waitLog waits for a line in a serin's log.
func waitLog(t *testing.T, s *harness.Serin, line string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(s.Log(), line) {
		if time.Now().After(deadline) {
			t.Fatalf("serin never logged %q", line)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLease waits until a replica's load Lease holds want requests for
// the cluster.
func waitLease(ctx context.Context, t *testing.T, c *cluster.Cluster, lease, cl string, want uint64) {
	t.Helper()
	var got uint64
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		text, err := c.Kubectl(ctx, "", "get", "lease", "-n", harness.Namespace, lease, "-o", `jsonpath={.metadata.annotations.serin\.dev/xds-load}`)
		if err == nil {
			snap, err := server.DecodeLoads(strings.TrimSpace(text))
			if err != nil {
				t.Fatalf("lease %s: %v", lease, err)
			}
			got = 0
			for _, lc := range snap.Counts(cl, time.Unix(0, 0), time.Now().Add(time.Hour)) {
				got += lc.Success + lc.Errors
			}
			if got == want {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("lease %s holds %d requests for %s, want %d", lease, got, cl, want)
}

func leaseWrites(t *testing.T, s *harness.Serin) float64 {
	t.Helper()
	n, err := s.Metric("serin_xds_load_share_writes_total")
	if err != nil {
		t.Fatal(err)
	}
	return n
}
