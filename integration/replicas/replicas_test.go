// Package replicas checks that a release only moves on when the proxies of
// every serin replica applied it: proxies connect to whichever replica the
// Service picked, and the leader's engine must count them all.
package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"google.golang.org/grpc"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/xds/traffic"
)

func TestMain(m *testing.M) { cluster.Main(m, cluster.Options{Nodes: 2}) }

const manifests = `apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: podinfo, namespace: %[1]s}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  progressDeadlineSeconds: 120
  service: {port: 9999, appProtocol: grpc}
  analysis: {interval: 1s, threshold: 2, stepWeight: 25, maxWeight: 50}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo, namespace: %[1]s, annotations: {serin.dev/canary: enabled}}
spec:
  replicas: 2
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers:
      - name: app
        image: ghcr.io/stefanprodan/podinfo:%[2]s
        ports: [{name: http, containerPort: 9898}, {name: grpc, containerPort: 9999}]
`

// stuckProxy is a raw ADS client on one replica that ACKs only when told
// to: a proxy that is slow to apply a step.
type stuckProxy struct {
	mu     sync.Mutex
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	last   *discoveryv3.DiscoveryResponse
	got    int
	acked  string
}

const typeEDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

func connectStuck(t *testing.T, addr, resource string) *stuckProxy {
	// resource is serin/<ns>/<svc>/<port>: the proxy is one of <ns>.
	conn, err := grpc.NewClient(addr, harness.XDSDialOption(t, addr, strings.Split(resource, "/")[1]))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := &stuckProxy{stream: stream}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "stuck-proxy"}, TypeUrl: typeEDS, ResourceNames: []string{resource}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.last, p.got = resp, p.got+1
			p.mu.Unlock()
		}
	}()
	return p
}

// ack acknowledges the latest response (once per response).
func (p *stuckProxy) ack(resource string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		return fmt.Errorf("the stuck proxy got nothing to ACK")
	}
	if p.acked == p.last.Nonce {
		return nil
	}
	p.acked = p.last.Nonce
	return p.stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "stuck-proxy"}, TypeUrl: typeEDS,
		ResourceNames: []string{resource}, VersionInfo: p.last.VersionInfo, ResponseNonce: p.last.Nonce})
}

func TestStepWaitsForProxiesOfEveryReplica(t *testing.T) {
	c := cluster.Get(t)
	ns := c.Namespace(t)
	harness.RunPodsim(t, c, ns)

	leader := harness.Install(t, c, harness.Options{ExtraArgs: []string{"--leader-elect=true"}})
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(leader.Log(), "Successfully acquired lease") {
		if time.Now().After(deadline) {
			t.Fatal("the first serin never became leader")
		}
		time.Sleep(100 * time.Millisecond)
	}
	follower := leader.Replica(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := c.Kubectl(ctx, fmt.Sprintf(manifests, ns, "6.0.0"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	status := func() string {
		out, _ := c.Kubectl(ctx, "", "get", "canary", "podinfo", "-n", ns, "-o",
			`jsonpath={.status.phase} {.status.canaryWeight} {.status.conditions[?(@.type=="TrafficApplied")].message}`)
		return out
	}
	waitFor := func(what string, cond func(string) bool) string {
		t.Helper()
		until := time.Now().Add(time.Minute)
		for time.Now().Before(until) {
			if s := status(); cond(s) {
				return s
			}
			if ctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: last status %q", what, status())
		return ""
	}
	waitFor("initialized", func(s string) bool { return strings.HasPrefix(s, "Initialized") })

	// A grpc-go client on the leader and a proxy that does not ACK on the
	// follower.
	resource := fmt.Sprintf("serin/%s/podinfo/9999", ns)
	grpcClient := harness.XDSClient(t, leader.XDSAddress(), "leader-client", "podinfo."+ns+":9999")
	if tally := harness.Send(ctx, grpcClient, 20); tally.Errors > 0 {
		t.Fatalf("traffic before the release: %+v", tally)
	}
	stuck := connectStuck(t, follower.XDSAddress(), resource)
	// It applies what it is first sent (weight 0), then stops ACKing.
	for i := 0; ; i++ {
		if err := stuck.ack(resource); err == nil {
			break
		} else if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The leader counts the follower's proxies from the follower's report,
	// written at most a second after they change: the release starts once
	// the report names the stuck proxy, as it would for a proxy that
	// connected some time before the release.
	waitPeerReport(ctx, t, c, follower, ns+"/podinfo")

	if _, err := c.Kubectl(ctx, fmt.Sprintf(manifests, ns, "6.0.1"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	s := waitFor("first step", func(s string) bool { return strings.HasPrefix(s, "Progressing 25") })
	// The follower's proxy has not applied weight 25: the release must hold
	// for many intervals, and say it waits for the proxies.
	for range 8 {
		time.Sleep(500 * time.Millisecond)
		s = status()
		if !strings.HasPrefix(s, "Progressing 25") {
			t.Fatalf("the release moved on while a proxy on the follower had not applied weight 25: %q", s)
		}
	}
	if !strings.Contains(s, "waiting for proxies to apply weight 25") {
		t.Errorf("status does not say it waits for the proxies: %q", s)
	}
	t.Logf("held at %q while the follower's proxy had not ACKed", s)

	// Once it ACKs, the release goes on and completes.
	if err := stuck.ack(resource); err != nil {
		t.Fatal(err)
	}
	waitFor("second step", func(s string) bool {
		return strings.HasPrefix(s, "Progressing 50") || strings.HasPrefix(s, "Promoting")
	})
	// Keep it ACKing from now on.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if strings.HasPrefix(status(), "Succeeded") {
				return
			}
			_ = stuck.ack(resource)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	waitFor("promotion", func(s string) bool { return strings.HasPrefix(s, "Succeeded") })
	<-done
	if tally := harness.Send(ctx, grpcClient, 50); tally.Errors > 0 || tally.Versions["6.0.1"] != 50 {
		t.Fatalf("after promotion: %+v", tally)
	}
}

// waitPeerReport waits until replica r's xDS report counts a proxy of the
// Canary key (namespace/name).
func waitPeerReport(ctx context.Context, t *testing.T, c *cluster.Cluster, r *harness.Serin, key string) {
	t.Helper()
	lease := "serin-xds-serin-" + strconv.Itoa(r.Ports.Webhook)
	var text string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		text, _ = c.Kubectl(ctx, "", "get", "lease", "-n", harness.Namespace, lease, "-o", `jsonpath={.metadata.annotations.serin\.dev/xds-applied}`)
		var entries map[string]traffic.PeerEntry
		if json.Unmarshal([]byte(text), &entries) == nil && entries[key].Proxies > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the report of replica %s never counted a proxy of %s: %q", lease, key, text)
}
