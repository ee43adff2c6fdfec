package replicas

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

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
	r := &loadRelease{t: t, c: c, ctx: ctx, ns: ns}
	r.apply("6.0.0")
	r.waitFor("initialized", func(s string) bool { return strings.HasPrefix(s, string(v1alpha1.PhaseInitialized)) })
	target := "podinfo." + ns + ":9999"
	r.onLeader = harness.XDSClient(t, leader.XDSAddress(), "leader-client", target)
	r.onFollower = harness.XDSClient(t, follower.XDSAddress(), "follower-client", target)
	r.apply("6.0.1")
	r.waitFor("analysis started", func(s string) bool {
		f := strings.Split(s, "|")
		return len(f) == 4 && f[0] == string(v1alpha1.PhaseProgressing) && f[1] != "0" && f[2] != ""
	})

	r.burst(100)
	s := r.waitFor("the verdict counts the requests sent to both replicas", func(s string) bool { return releaseRequests(s) == r.sent })
	t.Logf("before the restart: %d requests sent, verdict %q", r.sent, s)

	// Every count the leader received is in its Lease before it is killed
	// (what arrived in its last second could otherwise be lost).
	leaderLease := "serin-load-serin-" + strconv.Itoa(leader.Ports.Webhook)
	waitLease(ctx, t, c, leaderLease, fmt.Sprintf("serin/%s/podinfo/9999", ns), 100)

	writesBefore := leaseWrites(t, follower)
	leader.Kill()
	killedAt := time.Now()
	if err := leader.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("leader killed and started again in %s", time.Since(killedAt).Round(time.Millisecond))

	before := r.sent
	r.burst(100)
	s = r.neverBelow(before)
	if !strings.HasPrefix(s, string(v1alpha1.PhaseProgressing)) {
		t.Errorf("the release is no longer in progress: %q", s)
	}

	elapsed := time.Since(killedAt).Seconds()
	writes := leaseWrites(t, follower) - writesBefore
	size, _ := c.Kubectl(ctx, "", "get", "lease", "-n", harness.Namespace, leaderLease, "-o", `jsonpath={.metadata.annotations.serin\.dev/xds-load}`)
	t.Logf("FIGURE load_lease_writes_per_second_follower=%.2f", writes/elapsed)
	t.Logf("FIGURE load_lease_bytes_one_cluster=%d", len(size))
}

// loadRelease is the release of TestLoadReportsOfEveryReplicaCount and
// its two proxyless clients, one on each replica.
type loadRelease struct {
	t                    *testing.T
	c                    *cluster.Cluster
	ctx                  context.Context
	ns                   string
	onLeader, onFollower *grpc.ClientConn
	// sent is how many requests both clients sent since the analysis began.
	sent int
}

func (r *loadRelease) apply(version string) {
	r.t.Helper()
	deploy := manifests[strings.Index(manifests, "---"):]
	if _, err := r.c.Kubectl(r.ctx, fmt.Sprintf(loadReportsCanary+deploy, r.ns, version), "apply", "-f", "-"); err != nil {
		r.t.Fatal(err)
	}
}

// status is "phase|weight|analysisStartTime|lastVerdict".
func (r *loadRelease) status() string {
	out, _ := r.c.Kubectl(r.ctx, "", "get", "canary", "podinfo", "-n", r.ns, "-o",
		`jsonpath={.status.phase}|{.status.canaryWeight}|{.status.analysisStartTime}|{.status.lastVerdict}`)
	return out
}

func (r *loadRelease) waitFor(what string, cond func(string) bool) string {
	r.t.Helper()
	until := time.Now().Add(2 * time.Minute)
	for time.Now().Before(until) && r.ctx.Err() == nil {
		if s := r.status(); cond(s) {
			return s
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.t.Fatalf("%s: last status %q", what, r.status())
	return ""
}

// burst sends n requests through each client.
func (r *loadRelease) burst(n int) {
	r.t.Helper()
	for name, conn := range map[string]*grpc.ClientConn{"leader": r.onLeader, "follower": r.onFollower} {
		if tally := harness.Send(r.ctx, conn, n); tally.Errors > 0 {
			r.t.Fatalf("requests through the %s's client failed: %+v", name, tally)
		}
	}
	r.sent += 2 * n
}

// neverBelow waits for a verdict that counts every request sent, and
// fails on any verdict on the way that counts fewer than before.
func (r *loadRelease) neverBelow(before int) string {
	r.t.Helper()
	lowest, seen := before, 0
	until := time.Now().Add(2 * time.Minute)
	for {
		s := r.status()
		n := releaseRequests(s)
		if strings.HasPrefix(s, string(v1alpha1.PhaseProgressing)) && n > 0 {
			lowest = min(lowest, n)
			seen++
		}
		if lowest < before {
			r.t.Fatalf("after the restart a verdict counted %d requests, fewer than the %d counted before: %q", lowest, before, s)
		}
		if n == r.sent {
			r.t.Logf("after the restart: %d requests sent, verdict %q (%d statuses seen, none below %d)", r.sent, s, seen, before)
			return s
		}
		if time.Now().After(until) || r.ctx.Err() != nil {
			r.t.Fatalf("after the restart the verdict counts %d of %d requests: %q", n, r.sent, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
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
