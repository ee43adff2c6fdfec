package server

import (
	"context"
	"crypto/x509"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
)

// maxOutstanding bounds the delta responses remembered per type while they
// wait for their ACK.
const maxOutstanding = 16

// streamKey identifies a stream: the state-of-the-world and delta servers
// number their streams independently.
type streamKey struct {
	delta bool
	id    int64
}

// streamState is serin's view of one xDS stream: who is on the other end and,
// per type, what it subscribed to, was sent, acknowledged and rejected.
type streamState struct {
	key      streamKey
	typeURL  string // "" on ADS, else the type of the type-specific service
	service  string // "ads" or the type-specific service, for metrics
	identity string // from the verified client certificate, if any
	who      principal
	opened   time.Time

	mu      sync.Mutex
	node    string
	cluster string
	types   [numKinds]*typeState

	// indexed are the names st is filed under in the tracker's
	// subscription index; guarded by tracker.mu.
	indexed map[string]struct{}
}

type typeState struct {
	sub   stream.Subscription // mirrors go-control-plane's own view
	since time.Time           // first request of this type
	sent  map[string]contentHash
	acked map[string]contentHash
	nack  map[string]nackMark

	// last is the latest state-of-the-world response; handled is set once
	// its ACK or NACK has been processed.
	last    *sentResponse
	handled bool
	// outstanding are delta responses not yet ACKed or NACKed.
	outstanding []*sentResponse
}

type sentResponse struct {
	nonce   string
	res     []sentResource
	removed []string
}

type sentResource struct {
	name string
	hash contentHash
}

type nackMark struct {
	hash    contentHash
	message string
	at      time.Time
}

func newTypeState(sub stream.Subscription, now time.Time) *typeState {
	return &typeState{
		sub:   sub,
		since: now,
		sent:  map[string]contentHash{},
		acked: map[string]contentHash{},
		nack:  map[string]nackMark{},
	}
}

func (ts *typeState) subscribed(name string) bool {
	if ts.sub.IsWildcard() {
		return true
	}
	_, ok := ts.sub.SubscribedResources()[name]
	return ok
}

// forgetUnsubscribed drops what is known about resources the stream no longer
// asks for: the proxy drops them too, and gets them afresh if it asks again.
func (ts *typeState) forgetUnsubscribed() {
	if ts.sub.IsWildcard() {
		return
	}
	subs := ts.sub.SubscribedResources()
	for _, m := range []map[string]contentHash{ts.sent, ts.acked} {
		for name := range m {
			if _, ok := subs[name]; !ok {
				delete(m, name)
			}
		}
	}
	for name := range ts.nack {
		if _, ok := subs[name]; !ok {
			delete(ts.nack, name)
		}
	}
}

// ack records that the proxy applied a response. A state-of-the-world
// response of a full-state type replaces everything the proxy had. Earlier
// NACKs stay recorded: acknowledging the restored content after a NACK does
// not make the rejected generation applied, and Applied ignores NACKs of
// contents older than the generation asked about.
func (ts *typeState) ack(r *sentResponse, fullState bool) (changed []sentResource) {
	if fullState {
		in := make(map[string]struct{}, len(r.res))
		for _, x := range r.res {
			in[x.name] = struct{}{}
		}
		for name := range ts.acked {
			if _, ok := in[name]; !ok {
				delete(ts.acked, name)
			}
		}
	}
	for _, x := range r.res {
		if old, ok := ts.acked[x.name]; !ok || old != x.hash {
			ts.acked[x.name] = x.hash
			changed = append(changed, x)
		}
	}
	for _, name := range r.removed {
		delete(ts.acked, name)
	}
	return changed
}

// record notes a response as sent and returns the resources whose content
// differs from what the stream was sent before (the ones it pushes).
func (ts *typeState) record(r *sentResponse) (pushed []sentResource) {
	for _, x := range r.res {
		if old, ok := ts.sent[x.name]; !ok || old != x.hash {
			ts.sent[x.name] = x.hash
			pushed = append(pushed, x)
		}
	}
	return pushed
}

// rejection is one resource a proxy rejected, with what it had before.
type rejection struct {
	kind     kind
	name     string
	rejected contentHash
	good     contentHash // last content this stream ACKed
	hasGood  bool
	nack     NACK
}

// reject records a NACK of r. The culprits are the resources whose content
// differs from what the proxy last accepted; if none does, every resource
// of the response is blamed (and none can be reverted).
func (ts *typeState) reject(st *streamState, k kind, r *sentResponse, msg string, now time.Time) []rejection {
	var out []rejection
	for _, x := range r.res {
		if good, ok := ts.acked[x.name]; !ok || good != x.hash {
			out = append(out, rejection{kind: k, name: x.name, rejected: x.hash, good: good, hasGood: ok})
		}
	}
	if len(out) == 0 {
		for _, x := range r.res {
			out = append(out, rejection{kind: k, name: x.name, rejected: x.hash})
		}
	}
	for i := range out {
		ts.nack[out[i].name] = nackMark{hash: out[i].rejected, message: msg, at: now}
		out[i].nack = NACK{
			Node: st.nodeNameLocked(), Cluster: st.cluster, Identity: st.identity,
			TypeURL: k.typeURL(), Resource: out[i].name, Message: msg, Time: now,
		}
	}
	return out
}

// tracker implements go-control-plane's callbacks. Callbacks run on the
// stream's own goroutine, in the order requests and responses happen on that
// stream, so per-stream state needs only a short lock (Applied reads it from
// other goroutines).
type tracker struct {
	s *Server

	mu      sync.RWMutex
	streams map[streamKey]*streamState
	index   subIndex
}

var _ serverv3.Callbacks = (*tracker)(nil)

func newTracker(s *Server) *tracker {
	return &tracker{s: s, streams: map[streamKey]*streamState{}, index: newSubIndex()}
}

func (t *tracker) get(k streamKey) *streamState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.streams[k]
}

func (t *tracker) open(ctx context.Context, k streamKey, typeURL string) {
	defer t.s.changes.Add(1)
	who := t.s.principal(ctx)
	st := &streamState{key: k, typeURL: typeURL, service: serviceName(typeURL), identity: who.identity, who: who, opened: t.s.now()}
	t.mu.Lock()
	t.streams[k] = st
	t.mu.Unlock()
	t.s.metrics.connected.WithLabelValues(st.service, modeName(k.delta)).Inc()
}

func (t *tracker) close(k streamKey, node *corev3.Node) {
	defer t.s.changes.Add(1)
	t.mu.Lock()
	st := t.streams[k]
	delete(t.streams, k)
	if st != nil {
		t.index.remove(st)
	}
	t.mu.Unlock()
	if st == nil {
		return
	}
	t.s.metrics.connected.WithLabelValues(st.service, modeName(k.delta)).Dec()
	t.s.log.V(2).Info("xDS stream closed", "node", node.GetId(), "delta", k.delta, "stream", k.id)
}

func (t *tracker) OnStreamOpen(ctx context.Context, id int64, typeURL string) error {
	t.open(ctx, streamKey{id: id}, typeURL)
	return nil
}

func (t *tracker) OnStreamClosed(id int64, node *corev3.Node) { t.close(streamKey{id: id}, node) }

func (t *tracker) OnDeltaStreamOpen(ctx context.Context, id int64, typeURL string) error {
	t.open(ctx, streamKey{delta: true, id: id}, typeURL)
	return nil
}

func (t *tracker) OnDeltaStreamClosed(id int64, node *corev3.Node) {
	t.close(streamKey{delta: true, id: id}, node)
}

func (st *streamState) setNode(n *corev3.Node) {
	if n == nil {
		return
	}
	if n.GetId() != "" {
		st.node = n.GetId()
	}
	if n.GetCluster() != "" {
		st.cluster = n.GetCluster()
	}
	if st.node == "" {
		st.node = st.identity
	}
}

// OnStreamRequest follows go-control-plane's state-of-the-world rules: a
// request whose nonce is not the latest one sent for its type is ignored;
// otherwise it ACKs (no error_detail) or NACKs that response and carries the
// complete new subscription.
func (t *tracker) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	defer t.s.changes.Add(1)
	st := t.get(streamKey{id: id})
	k, ok := kindOf(req.GetTypeUrl())
	if st == nil || !ok {
		return nil
	}
	now := t.s.now()
	var rejected []rejection
	var acked []sentResource
	st.mu.Lock()
	st.setNode(req.GetNode())
	ts := st.types[k]
	resubscribed := false
	switch {
	case ts == nil:
		ts = newTypeState(stream.NewSotwSubscription(req.GetResourceNames(), k.legacyWildcard()), now)
		st.types[k] = ts
		resubscribed = true
	case ts.last != nil && req.GetResponseNonce() != ts.last.nonce:
		st.mu.Unlock()
		return nil // stale: the server ignores it as well
	default:
		if ts.last != nil && !ts.handled {
			ts.handled = true
			if d := req.GetErrorDetail(); d != nil {
				rejected = ts.reject(st, k, ts.last, d.GetMessage(), now)
			} else {
				acked = ts.ack(ts.last, k.fullState())
			}
		}
		if !sameSubscription(ts.sub, req.GetResourceNames()) {
			ts.sub.SetResourceSubscription(req.GetResourceNames())
			ts.forgetUnsubscribed()
			resubscribed = true
		}
	}
	since := ts.since
	st.mu.Unlock()
	if resubscribed {
		t.reindex(st)
	}
	t.s.observeAck(k, acked, since)
	t.s.rejected(rejected)
	return nil
}

func (t *tracker) OnStreamResponse(_ context.Context, id int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	defer t.s.changes.Add(1)
	t.s.guarded.fired(req)
	st := t.get(streamKey{id: id})
	k, ok := kindOf(resp.GetTypeUrl())
	if st == nil || !ok {
		resp.Resources = nil // nothing is sent to a stream serin does not know
		return
	}
	r := &sentResponse{nonce: resp.GetNonce(), res: t.s.filterSotw(st.who, k, resp)}
	st.mu.Lock()
	ts := st.types[k]
	if ts == nil {
		st.mu.Unlock()
		return
	}
	ts.last, ts.handled = r, false
	pushed := ts.record(r)
	since := ts.since
	st.mu.Unlock()
	t.s.observeSend(k, pushed, since)
}

// OnStreamDeltaRequest handles a delta request: subscription changes, and an
// ACK or NACK when it names the nonce of a response. The first request of a
// type may list the versions the proxy already holds (after a reconnect);
// those count as acknowledged, since the cache will not send them again.
func (t *tracker) OnStreamDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	defer t.s.changes.Add(1)
	st := t.get(streamKey{delta: true, id: id})
	if st == nil {
		return nil
	}
	typeURL := req.GetTypeUrl()
	if typeURL == "" {
		typeURL = st.typeURL
	}
	k, ok := kindOf(typeURL)
	if !ok {
		return nil
	}
	now := t.s.now()
	var rejected []rejection
	var acked []sentResource
	st.mu.Lock()
	st.setNode(req.GetNode())
	ts := st.types[k]
	resubscribed := ts == nil || len(req.GetResourceNamesSubscribe()) > 0 || len(req.GetResourceNamesUnsubscribe()) > 0
	if ts == nil {
		ts = newTypeState(stream.NewDeltaSubscription(req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe(),
			nil, k.legacyWildcard()), now)
		for name, v := range req.GetInitialResourceVersions() {
			if h, ok := hashFromVersion(v); ok {
				ts.acked[name] = h
			}
		}
		st.types[k] = ts
	} else {
		ts.sub.UpdateResourceSubscriptions(req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
		ts.forgetUnsubscribed()
	}
	if nonce := req.GetResponseNonce(); nonce != "" {
		for i, r := range ts.outstanding {
			if r.nonce != nonce {
				continue
			}
			ts.outstanding = append(ts.outstanding[:i], ts.outstanding[i+1:]...)
			if d := req.GetErrorDetail(); d != nil {
				rejected = ts.reject(st, k, r, d.GetMessage(), now)
			} else {
				acked = ts.ack(r, false)
			}
			break
		}
	}
	since := ts.since
	st.mu.Unlock()
	if resubscribed {
		t.reindex(st)
	}
	t.s.observeAck(k, acked, since)
	t.s.rejected(rejected)
	return nil
}

func (t *tracker) OnStreamDeltaResponse(id int64, req *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	defer t.s.changes.Add(1)
	t.s.guarded.fired(req)
	st := t.get(streamKey{delta: true, id: id})
	k, ok := kindOf(resp.GetTypeUrl())
	if st == nil || !ok {
		resp.Resources = nil
		return
	}
	t.s.filterDelta(st.who, k, resp)
	r := &sentResponse{
		nonce:   resp.GetNonce(),
		res:     make([]sentResource, 0, len(resp.GetResources())),
		removed: resp.GetRemovedResources(),
	}
	for _, x := range resp.GetResources() {
		h, ok := hashFromVersion(x.GetVersion())
		if !ok {
			h = hashBytes(x.GetResource().GetValue())
		}
		r.res = append(r.res, sentResource{name: x.GetName(), hash: h})
	}
	st.mu.Lock()
	ts := st.types[k]
	if ts == nil {
		st.mu.Unlock()
		return
	}
	if len(ts.outstanding) == maxOutstanding {
		ts.outstanding = ts.outstanding[1:]
	}
	ts.outstanding = append(ts.outstanding, r)
	pushed := ts.record(r)
	since := ts.since
	st.mu.Unlock()
	t.s.observeSend(k, pushed, since)
}

func (t *tracker) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error { return nil }

func (t *tracker) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}

// sameSubscription reports whether a state-of-the-world request names
// exactly the resources already subscribed (the common ACK), so the mirror
// need not rebuild its subscription.
func sameSubscription(sub stream.Subscription, names []string) bool {
	if sub.IsWildcard() || len(names) == 0 || len(names) != len(sub.SubscribedResources()) {
		return false
	}
	for _, n := range names {
		if _, ok := sub.SubscribedResources()[n]; !ok {
			return false
		}
	}
	return true
}

// peerIdentity names the client by its verified certificate: the first URI
// SAN (a SPIFFE ID under Istio), else the first DNS SAN, else the subject CN.
func peerIdentity(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return ""
	}
	return certIdentity(info.State.VerifiedChains[0][0])
}

func certIdentity(c *x509.Certificate) string {
	switch {
	case len(c.URIs) > 0:
		return c.URIs[0].String()
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	default:
		return c.Subject.CommonName
	}
}

func serviceName(typeURL string) string {
	if k, ok := kindOf(typeURL); ok {
		return [numKinds]string{"cds", "eds", "lds", "rds"}[k]
	}
	return "ads"
}

func modeName(delta bool) string {
	if delta {
		return "delta"
	}
	return "sotw"
}
