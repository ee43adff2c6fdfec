package release

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"

	"github.com/serin-dev/serin/integration/harness"
)

const typeEDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

// seen is one ClusterLoadAssignment the observer received.
type seen struct {
	At time.Time
	// Conn counts the observer's streams: it changes after a reconnect.
	Conn int
	// Weight is the canary locality's load_balancing_weight (0 when the
	// locality is left out), Stable the stable one's.
	Weight, Stable int32
	Version        string
	// Missing is set when the response did not carry the resource.
	Missing bool
}

// adsObserver is a raw ADS client (SotW): it subscribes to one EDS
// resource, ACKs everything and records every canary weight it is sent.
// It reconnects at once when the stream breaks, so it sees what serin
// serves right after each restart.
type adsObserver struct {
	addr, node, resource string
	creds                grpc.DialOption

	mu      sync.Mutex
	seen    []seen
	streams int
}

func observeEDS(t *testing.T, addr, node, resource string) *adsObserver {
	// resource is serin/<ns>/<svc>/<port>: the observer is a proxy of <ns>.
	o := &adsObserver{addr: addr, node: node, resource: resource,
		creds: harness.XDSDialOption(t, addr, strings.Split(resource, "/")[1])}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return o
}

func (o *adsObserver) run(ctx context.Context) {
	for ctx.Err() == nil {
		o.mu.Lock()
		o.streams++
		conn := o.streams
		o.mu.Unlock()
		_ = o.stream(ctx, conn)
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stream runs one ADS stream until it breaks.
func (o *adsObserver) stream(ctx context.Context, conn int) error {
	cc, err := grpc.NewClient(o.addr, o.creds)
	if err != nil {
		return err
	}
	defer cc.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(sctx)
	if err != nil {
		return err
	}
	req := &discoveryv3.DiscoveryRequest{
		Node:          &corev3.Node{Id: o.node, Cluster: "serin-tests"},
		TypeUrl:       typeEDS,
		ResourceNames: []string{o.resource},
	}
	if err := st.Send(req); err != nil {
		return err
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		rec := seen{At: time.Now(), Conn: conn, Version: resp.GetVersionInfo(), Missing: true}
		for _, a := range resp.GetResources() {
			var cla endpointv3.ClusterLoadAssignment
			if err := a.UnmarshalTo(&cla); err != nil {
				return fmt.Errorf("decode EDS: %w", err)
			}
			if cla.GetClusterName() != o.resource {
				continue
			}
			rec.Missing = false
			rec.Weight, rec.Stable = harness.TrackWeights(&cla)
		}
		o.mu.Lock()
		o.seen = append(o.seen, rec)
		o.mu.Unlock()
		// ACK: the version and nonce of what was received.
		req = &discoveryv3.DiscoveryRequest{
			Node: req.Node, TypeUrl: typeEDS, ResourceNames: req.ResourceNames,
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(),
		}
		if err := st.Send(req); err != nil {
			return err
		}
	}
}

func (o *adsObserver) all() []seen {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.seen)
}

func (o *adsObserver) last() (seen, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) == 0 {
		return seen{}, false
	}
	return o.seen[len(o.seen)-1], true
}
