package harness

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/xds"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// XDSClient is a grpc-go channel to xds:///target, bootstrapped to serin's
// xDS server: an independent, production xDS client as the data plane.
// It has a client certificate for the target's namespace (<svc>.<ns>:<port>)
// when serin serves mutual TLS.
func XDSClient(t testing.TB, xdsAddress, nodeID, target string) *grpc.ClientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	creds, err := XDSCredentialsFor(ctx, xdsAddress, TargetNamespace(target))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := NewXDSClient(xdsAddress, nodeID, target, creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// NewXDSClient is XDSClient outside a test (e.g. for the demo), with the
// given credentials; the caller closes the channel.
func NewXDSClient(xdsAddress, nodeID, target string, creds XDSCredentials) (*grpc.ClientConn, error) {
	res, err := xds.NewXDSResolverWithConfigForTesting([]byte(xdsBootstrap(xdsAddress, creds.bootstrapCreds(), nodeID)))
	if err != nil {
		return nil, err
	}
	return grpc.NewClient("xds:///"+target, grpc.WithResolvers(res), grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// xdsBootstrap is the xDS bootstrap of the tests' proxyless clients:
// serverURI with channelCreds (a JSON array), and the node.
func xdsBootstrap(serverURI, channelCreds, nodeID string) string {
	return fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": %s, "server_features": ["xds_v3"]}],
		"node": {"id": %q, "cluster": "serin-tests"}
	}`, serverURI, channelCreds, nodeID)
}

// Tally counts RPC answers by the x-version the pod sent back, and by pod.
type Tally struct {
	Versions map[string]int
	Pods     map[string]int
	Errors   int
	LastErr  error
}

// Send makes n UnaryCalls over conn from 8 goroutines, with the given
// request metadata (key, value pairs), and tallies who answered.
func Send(ctx context.Context, conn *grpc.ClientConn, n int, md ...string) Tally {
	client := testgrpc.NewTestServiceClient(conn)
	t := Tally{Versions: map[string]int{}, Pods: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if len(md) > 0 {
					cctx = metadata.AppendToOutgoingContext(cctx, md...)
				}
				var header metadata.MD
				_, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{}, grpc.Header(&header), grpc.WaitForReady(true))
				cancel()
				mu.Lock()
				if v := header.Get("x-version"); len(v) > 0 {
					t.Versions[v[0]]++
				}
				if p := header.Get("x-pod"); len(p) > 0 {
					t.Pods[p[0]]++
				}
				if err != nil {
					t.Errors++
					t.LastErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return t
}

// istiodBootstrap is the xDS bootstrap of Istio's proxyless gRPC clients:
// istiod's plaintext ADS, a node of namespace ns with istiod's gRPC
// generator.
func istiodBootstrap(istiodAddress, ns string) string {
	return fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "sidecar~10.9.0.1~proxyless-client.%[2]s~%[2]s.svc.cluster.local",
			"metadata": {"GENERATOR": "grpc", "NAMESPACE": %[2]q, "CLUSTER_ID": "Kubernetes", "INSTANCE_IPS": "10.9.0.1"}}
	}`, istiodAddress, ns)
}

// IstiodXDSClient is a grpc-go channel to xds:///target bootstrapped to
// istiod as Istio's proxyless gRPC clients are (istiodBootstrap). istiod,
// not serin, gives it listeners, routes (from the mesh's routes: Gateway
// API and VirtualServices), clusters and endpoints.
func IstiodXDSClient(t testing.TB, istiodAddress, ns, target string) *grpc.ClientConn {
	t.Helper()
	res, err := xds.NewXDSResolverWithConfigForTesting([]byte(istiodBootstrap(istiodAddress, ns)))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///"+target, grpc.WithResolvers(res), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TrackWeights reads the canary and stable locality weights of one of
// serin's ClusterLoadAssignments (a locality at weight 0 is left out, so
// its weight reads 0).
func TrackWeights(cla *endpointv3.ClusterLoadAssignment) (canary, stable int32) {
	for _, l := range cla.GetEndpoints() {
		switch v1alpha1.Track(l.GetLocality().GetSubZone()) {
		case v1alpha1.TrackCanary:
			canary = int32(l.GetLoadBalancingWeight().GetValue())
		case v1alpha1.TrackStable:
			stable = int32(l.GetLoadBalancingWeight().GetValue())
		}
	}
	return canary, stable
}
