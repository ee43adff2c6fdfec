package server

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// kind indexes the four resource types serin serves. The order is the order
// in which upserts are applied (clusters before the endpoints that fill them,
// listeners before the routes they name); removals go the other way round.
type kind int

const (
	kindCluster kind = iota
	kindEndpoint
	kindListener
	kindRoute
	numKinds
)

var kindTypeURLs = [numKinds]string{
	kindCluster:  resource.ClusterType,
	kindEndpoint: resource.EndpointType,
	kindListener: resource.ListenerType,
	kindRoute:    resource.RouteType,
}

func (k kind) typeURL() string { return kindTypeURLs[k] }

// fullState reports whether a state-of-the-world response of this kind lists
// every subscribed resource (so a missing one means "deleted").
func (k kind) fullState() bool { return cache.ResourceRequiresFullStateInSotw(k.typeURL()) }

// legacyWildcard reports whether an empty first request means "all
// resources". Envoy relies on it for CDS and LDS; nobody asks for all
// endpoints or routes, and grpc-go never means a wildcard by an empty list.
func (k kind) legacyWildcard() bool { return k == kindCluster || k == kindListener }

// newMessage returns an empty message of the kind's type.
func (k kind) newMessage() proto.Message {
	switch k {
	case kindCluster:
		return &clusterv3.Cluster{}
	case kindEndpoint:
		return &endpointv3.ClusterLoadAssignment{}
	case kindListener:
		return &listenerv3.Listener{}
	default:
		return &routev3.RouteConfiguration{}
	}
}

func kindOf(typeURL string) (kind, bool) {
	for k, u := range kindTypeURLs {
		if u == typeURL {
			return kind(k), true
		}
	}
	return 0, false
}

// contentHash identifies one resource content: the first 8 bytes of the
// SHA-256 of its deterministic encoding. go-control-plane uses the hex of the
// same SHA-256 as the per-resource version in delta responses, so both
// protocols map to the same value.
type contentHash uint64

func hashBytes(b []byte) contentHash {
	sum := sha256.Sum256(b)
	return contentHash(binary.BigEndian.Uint64(sum[:8]))
}

// hashFromVersion reads a delta resource version (hex SHA-256) as a
// contentHash.
func hashFromVersion(v string) (contentHash, bool) {
	if len(v) != 2*sha256.Size {
		return 0, false
	}
	h, err := strconv.ParseUint(v[:16], 16, 64)
	if err != nil {
		return 0, false
	}
	return contentHash(h), true
}

// marshal encodes a resource exactly as go-control-plane does before sending
// it, so hashes computed here match the bytes on the wire.
func marshal(m proto.Message) ([]byte, error) {
	b, err := cache.MarshalResource(m)
	if err != nil {
		return nil, fmt.Errorf("marshaling %T: %w", m, err)
	}
	return b, nil
}

// resourceName reads field 1 of an encoded resource: the name of a Cluster,
// Listener and RouteConfiguration and the cluster_name of a
// ClusterLoadAssignment. State-of-the-world responses carry bare Anys, and
// this avoids decoding whole resources on every send.
func resourceName(b []byte) (string, bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", false
			}
			return string(v), true
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
	}
	return "", false
}

// encodedCache remembers the name and hash of encoded resources by identity.
// go-control-plane encodes each resource once and every state-of-the-world
// response carrying it shares those bytes, so a full-state CDS response to
// a thousand proxies is decoded and hashed once, not a thousand times. The
// entry holds the slice, so its address cannot be reused for other bytes
// while it is remembered; the whole cache is dropped when it grows past
// encodedCacheMax entries.
type encodedCache struct {
	m sync.Map // encodedKey → sentResource
	n atomic.Int64
}

const encodedCacheMax = 1 << 16

type encodedKey struct {
	p *byte
	n int
}

type encodedEntry struct {
	b []byte // pins p
	x sentResource
}

func (c *encodedCache) lookup(b []byte) (sentResource, bool) {
	if len(b) == 0 {
		return sentResource{}, false
	}
	key := encodedKey{p: &b[0], n: len(b)}
	if v, ok := c.m.Load(key); ok {
		return v.(*encodedEntry).x, true
	}
	name, ok := resourceName(b)
	if !ok {
		return sentResource{}, false
	}
	x := sentResource{name: name, hash: hashBytes(b)}
	if c.n.Add(1) > encodedCacheMax {
		c.m.Clear()
		c.n.Store(1)
	}
	c.m.Store(key, &encodedEntry{b: b, x: x})
	return x, true
}

// guardedCache sits between go-control-plane's stream servers and the
// MuxCache. It fixes two behaviours that would otherwise turn one rejected
// resource into a resend loop or kill a stream:
//
//   - A state-of-the-world NACK carries the last version the client accepted.
//     LinearCache answers any request whose version is empty or lacks the
//     cache's prefix (first response rejected, or a NACK after a serin
//     restart) by sending everything subscribed again, the rejected content
//     included, which the client rejects again, and so on. A NACK is given
//     the prefix here, so the cache compares what the stream was sent with
//     what it holds and waits for a real change (the revert, or the next
//     Publish).
//   - MuxCache fails the whole stream for a type it does not know. Requests
//     for other types (SDS over ADS, say) get a watch that never fires.
//
// It also spares the cache's lock when a watch is cancelled after it fired.
// Both stream servers cancel the previous watch of a type on every request,
// so every ACK costs a cancel and a new watch, each under the type's single
// cache lock; with a thousand proxies ACKing one weight step together, that
// lock convoy dominated the step latency. A fired watch has already been
// dropped by the cache, so its cancel has nothing to do: the tracker marks
// watches fired when their response is sent (responses carry the request
// they answer), and cancel skips the cache for those.
type guardedCache struct {
	mux    *cache.MuxCache
	prefix string
	log    logr.Logger

	live sync.Map // request pointer → *atomic.Bool (fired)
}

var _ cache.Cache = (*guardedCache)(nil)

func newGuardedCache(caches [numKinds]*cache.LinearCache, prefix string, log logr.Logger) *guardedCache {
	mux := &cache.MuxCache{
		Classify:      func(r *cache.Request) string { return r.GetTypeUrl() },
		ClassifyDelta: func(r *cache.DeltaRequest) string { return r.GetTypeUrl() },
		Caches:        make(map[string]cache.Cache, numKinds),
	}
	for k, c := range caches {
		mux.Caches[kind(k).typeURL()] = c
	}
	return &guardedCache{mux: mux, prefix: prefix, log: log}
}

func (g *guardedCache) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	if _, ok := kindOf(req.GetTypeUrl()); !ok {
		g.log.V(1).Info("ignoring request for a type serin does not serve", "typeURL", req.GetTypeUrl())
		return func() {}, nil
	}
	if req.GetErrorDetail() != nil && !strings.HasPrefix(req.GetVersionInfo(), g.prefix) {
		req = proto.Clone(req).(*cache.Request)
		req.VersionInfo = g.prefix
	}
	cancel, err := g.mux.CreateWatch(req, sub, ch)
	if err != nil {
		return nil, fmt.Errorf("creating watch for %s: %w", req.GetTypeUrl(), err)
	}
	return g.track(req, cancel), nil
}

func (g *guardedCache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	if _, ok := kindOf(req.GetTypeUrl()); !ok {
		g.log.V(1).Info("ignoring delta request for a type serin does not serve", "typeURL", req.GetTypeUrl())
		return func() {}, nil
	}
	cancel, err := g.mux.CreateDeltaWatch(req, sub, ch)
	if err != nil {
		return nil, fmt.Errorf("creating delta watch for %s: %w", req.GetTypeUrl(), err)
	}
	return g.track(req, cancel), nil
}

// track wraps the cancel function of the watch created for req. The watch
// can only fire after CreateWatch returns, and its response is sent on the
// same stream goroutine that later cancels it, so marking and cancelling are
// ordered; a response still queued when the next request arrives simply
// takes the slow path.
func (g *guardedCache) track(req any, cancel func()) func() {
	if cancel == nil {
		return nil
	}
	fired := new(atomic.Bool)
	g.live.Store(req, fired)
	return func() {
		g.live.Delete(req)
		if !fired.Load() {
			cancel()
		}
	}
}

// fired records that the watch created for req has sent its response.
func (g *guardedCache) fired(req any) {
	if v, ok := g.live.Load(req); ok {
		v.(*atomic.Bool).Store(true)
	}
}

func (g *guardedCache) Fetch(ctx context.Context, req *cache.Request) (cache.Response, error) {
	return nil, fmt.Errorf("fetch of %s: REST xDS is not served", req.GetTypeUrl())
}

// gcpLogger adapts go-control-plane's printf logger to logr. The library logs
// every watch it opens at "info"; that is debug detail for serin.
type gcpLogger struct{ log logr.Logger }

func (g gcpLogger) Debugf(format string, args ...any) { g.at(4, format, args) }
func (g gcpLogger) Infof(format string, args ...any)  { g.at(3, format, args) }
func (g gcpLogger) Warnf(format string, args ...any)  { g.at(1, format, args) }
func (g gcpLogger) Errorf(format string, args ...any) {
	g.log.Error(fmt.Errorf(format, args...), "go-control-plane error")
}

func (g gcpLogger) at(level int, format string, args []any) {
	if l := g.log.V(level); l.Enabled() {
		l.Info("go-control-plane", "detail", fmt.Sprintf(format, args...))
	}
}
