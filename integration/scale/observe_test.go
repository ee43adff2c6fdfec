package scale

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	appsv1 "k8s.io/api/apps/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"google.golang.org/grpc"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/rollout"
)

const typeEDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

// received is a canary weight an observer was sent (and ACKed at once).
type received struct {
	At             time.Time
	Weight, Stable int32
}

// observer is a raw ADS stream (SotW) standing in for one proxy of a
// release: it subscribes to the release's EDS resource, ACKs every
// response and records each change of the canary weight. Streams of one
// namespace share a connection (its client certificate is the
// namespace's).
type observer struct {
	resource string
	mu       sync.Mutex
	seen     []received
}

// run keeps a stream open until ctx ends, reconnecting when it breaks.
func (o *observer) run(ctx context.Context, cc *grpc.ClientConn, node string) {
	for ctx.Err() == nil {
		_ = o.stream(ctx, cc, node)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (o *observer) stream(ctx context.Context, cc *grpc.ClientConn, node string) error {
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node, Cluster: "serin-scale"}, TypeUrl: typeEDS, ResourceNames: []string{o.resource}}
	if err := st.Send(req); err != nil {
		return err
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		if err := o.record(resp); err != nil {
			return err
		}
		ack := &discoveryv3.DiscoveryRequest{Node: req.Node, TypeUrl: typeEDS, ResourceNames: req.ResourceNames,
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
		if err := st.Send(ack); err != nil {
			return err
		}
	}
}

// record keeps the canary weight of a response when it changed.
func (o *observer) record(resp *discoveryv3.DiscoveryResponse) error {
	now := time.Now()
	for _, a := range resp.GetResources() {
		var cla endpointv3.ClusterLoadAssignment
		if err := a.UnmarshalTo(&cla); err != nil {
			return fmt.Errorf("decode EDS: %w", err)
		}
		if cla.GetClusterName() != o.resource {
			continue
		}
		r := received{At: now}
		r.Weight, r.Stable = harness.TrackWeights(&cla)
		o.mu.Lock()
		if n := len(o.seen); n == 0 || o.seen[n-1].Weight != r.Weight || o.seen[n-1].Stable != r.Stable {
			o.seen = append(o.seen, r)
		}
		o.mu.Unlock()
	}
	return nil
}

func (o *observer) all() []received {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.seen)
}

// status is one observed state of a Canary, kept when a field the
// figures use changed.
type status struct {
	At       time.Time
	Phase    v1alpha1.CanaryPhase
	Weight   int32
	Revision string
	// Applied is the weight TrafficApplied says the data plane ACKed (-1
	// when it says none).
	Applied int32
}

// canaryWatch records every Canary's status changes, cluster-wide.
type canaryWatch struct {
	mu      sync.Mutex
	history map[string][]status // by namespace/name
}

func watchCanaries(ctx context.Context, cl client.WithWatch) *canaryWatch {
	w := &canaryWatch{history: map[string][]status{}}
	go watchAll(ctx, cl, &v1alpha1.CanaryList{}, func(ev watch.Event) {
		if c, ok := ev.Object.(*v1alpha1.Canary); ok && ev.Type != watch.Deleted {
			w.add(c)
		}
	})
	return w
}

// watchAll passes every event of a cluster-wide watch of list's kind to
// fn until ctx ends, watching again whenever the watch closes.
func watchAll(ctx context.Context, cl client.WithWatch, list client.ObjectList, fn func(watch.Event)) {
	for ctx.Err() == nil {
		wi, err := cl.Watch(ctx, list)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for ev := range wi.ResultChan() {
			fn(ev)
		}
		wi.Stop()
	}
}

func (w *canaryWatch) add(c *v1alpha1.Canary) {
	s := status{At: time.Now(), Phase: c.Status.Phase, Weight: c.Status.CanaryWeight, Revision: c.Status.CanaryRevision, Applied: appliedWeight(c)}
	key := c.Namespace + "/" + c.Name
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.history[key]
	if n := len(h); n > 0 {
		last := h[n-1]
		last.At = s.At
		if last == s {
			return
		}
	}
	w.history[key] = append(h, s)
}

// appliedWeight is the weight the TrafficApplied condition reports
// applied, -1 when none.
func appliedWeight(c *v1alpha1.Canary) int32 {
	cond := apimeta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionTrafficApplied)
	if cond == nil || cond.Status != metav1.ConditionTrue {
		return -1
	}
	i := strings.LastIndex(cond.Message, "applied weight ")
	if i < 0 {
		return -1
	}
	var w int32
	if _, err := fmt.Sscanf(cond.Message[i:], "applied weight %d", &w); err != nil {
		return -1
	}
	return w
}

// of is the recorded history of a Canary.
func (w *canaryWatch) of(key string) []status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.history[key])
}

// last is the Canary's latest recorded status.
func (w *canaryWatch) last(key string) (status, bool) {
	h := w.of(key)
	if len(h) == 0 {
		return status{}, false
	}
	return h[len(h)-1], true
}

// copyWatch records when each canary copy became ready (every pod
// updated and available), cluster-wide: the cluster's part of a release's
// start (ReplicaSet, pods, scheduling, kwok), between serin's.
type copyWatch struct {
	mu    sync.Mutex
	ready map[string][]time.Time // by namespace/target name
	was   map[string]bool
}

func watchCopies(ctx context.Context, cl client.WithWatch) *copyWatch {
	w := &copyWatch{ready: map[string][]time.Time{}, was: map[string]bool{}}
	go watchAll(ctx, cl, &appsv1.DeploymentList{}, func(ev watch.Event) {
		if d, ok := ev.Object.(*appsv1.Deployment); ok && strings.HasSuffix(d.Name, v1alpha1.CopySuffix) {
			w.add(d, ev.Type != watch.Deleted && copyReady(d))
		}
	})
	return w
}

// copyReady: the copy runs pods, and the engine counts it ready.
func copyReady(d *appsv1.Deployment) bool {
	c := rollout.ObserveCopy(d)
	return c.Desired > 0 && c.Ready
}

func (w *copyWatch) add(d *appsv1.Deployment, ready bool) {
	key := d.Namespace + "/" + strings.TrimSuffix(d.Name, v1alpha1.CopySuffix)
	w.mu.Lock()
	defer w.mu.Unlock()
	if ready && !w.was[key] {
		w.ready[key] = append(w.ready[key], time.Now())
	}
	w.was[key] = ready
}

// of are the times the copy of a target became ready.
func (w *copyWatch) of(key string) []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.ready[key])
}
