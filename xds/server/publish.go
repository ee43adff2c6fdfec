package server

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/serin-dev/serin/xds/model"
	"github.com/serin-dev/serin/xds/translate"
)

// Generation numbers the calls to Publish of one Server. It only grows, but
// it starts again at 1 in every process: compare generations from the same
// Server only.
type Generation uint64

// historyLen is how many contents are remembered per resource: enough to map
// what a proxy acknowledged a few steps ago back to its generation, and to
// put the last good content back after a NACK.
const historyLen = 4

// version is one content a resource had.
type version struct {
	hash contentHash
	gen  Generation // the latest Publish that set this content
	raw  []byte     // deterministic encoding, kept to restore it after a NACK
}

// entry is the state of one published resource.
type entry struct {
	owner   string      // release key
	desired contentHash // content of the last Publish
	served  contentHash // content in the cache; differs from desired after a NACK revert
	// servedAt is when served went into the cache (push and ACK latencies
	// are measured from here).
	servedAt time.Time
	history  []version // oldest first, hashes distinct
}

func (e *entry) find(h contentHash) (version, bool) {
	for _, v := range e.history {
		if v.hash == h {
			return v, true
		}
	}
	return version{}, false
}

// record makes h the newest content, published in gen.
func (e *entry) record(v version) {
	e.history = slices.DeleteFunc(e.history, func(o version) bool { return o.hash == v.hash })
	if len(e.history) == historyLen {
		e.history = slices.Delete(e.history, 0, 1)
	}
	e.history = append(e.history, v)
}

// index is what has been published, by kind and name, plus which release owns
// which names.
type index struct {
	mu       sync.RWMutex
	gen      Generation
	entries  [numKinds]map[string]*entry
	releases map[string]*[numKinds][]string // key → sorted names per kind
	// visibility is who may receive each release, by key.
	visibility map[string]model.Visibility
}

func newIndex() *index {
	idx := &index{releases: map[string]*[numKinds][]string{}, visibility: map[string]model.Visibility{}}
	for k := range idx.entries {
		idx.entries[k] = map[string]*entry{}
	}
	return idx
}

// item is one resource of a Publish call, encoded.
type item struct {
	msg  proto.Message
	raw  []byte
	hash contentHash
}

// collect encodes and names the resources of one release.
func collect(res *translate.Resources) ([numKinds]map[string]item, error) {
	var out [numKinds]map[string]item
	for k := range out {
		out[k] = map[string]item{}
	}
	if res == nil {
		return out, nil
	}
	add := func(k kind, m proto.Message) error {
		name := cache.GetResourceName(m)
		if name == "" {
			return fmt.Errorf("%s without a name", k.typeURL())
		}
		if _, dup := out[k][name]; dup {
			return fmt.Errorf("%s %q listed twice", k.typeURL(), name)
		}
		raw, err := marshal(m)
		if err != nil {
			return err
		}
		out[k][name] = item{msg: m, raw: raw, hash: hashBytes(raw)}
		return nil
	}
	var errs []error
	for _, m := range res.Clusters {
		errs = append(errs, addNonNil(add, kindCluster, m))
	}
	for _, m := range res.Endpoints {
		errs = append(errs, addNonNil(add, kindEndpoint, m))
	}
	for _, m := range res.Listeners {
		errs = append(errs, addNonNil(add, kindListener, m))
	}
	for _, m := range res.Routes {
		errs = append(errs, addNonNil(add, kindRoute, m))
	}
	return out, errors.Join(errs...)
}

func addNonNil[M interface {
	proto.Message
	comparable
}](add func(kind, proto.Message) error, k kind, m M) error {
	var zero M
	if m == zero {
		return fmt.Errorf("nil %s", k.typeURL())
	}
	return add(k, m)
}

// change is what one Publish or Remove does to the caches.
type change struct {
	upserts [numKinds]map[string]types.Resource
	deletes [numKinds][]string
}

func (c *change) upsert(k kind, name string, m proto.Message) {
	if c.upserts[k] == nil {
		c.upserts[k] = map[string]types.Resource{}
	}
	c.upserts[k][name] = m
}

// Publish makes res the resources of the release key, replacing what was
// published for key before. Only resources whose content changed (compared by
// their deterministic encoding) touch the caches, so a weight step is one
// update of one ClusterLoadAssignment and reaches only the proxies subscribed
// to it. Resources of key that are missing from res are removed. A name may
// belong to one release only.
//
// Publish takes ownership of the messages in res: they are served as they are
// and must not be modified afterwards. Publish may be called before Start.
func (s *Server) Publish(key string, res *translate.Resources) (Generation, error) {
	defer s.changes.Add(1)
	if key == "" {
		return 0, errors.New("publish: empty release key")
	}
	next, err := collect(res)
	if err != nil {
		return 0, fmt.Errorf("publish %s: %w", key, err)
	}

	s.publishMu.Lock()
	defer s.publishMu.Unlock()

	idx := s.idx
	idx.mu.Lock()
	for k := range numKinds {
		for name := range next[k] {
			if e := idx.entries[k][name]; e != nil && e.owner != key {
				idx.mu.Unlock()
				return 0, fmt.Errorf("publish %s: %s %q belongs to release %s", key, k.typeURL(), name, e.owner)
			}
		}
	}
	idx.gen++
	gen := idx.gen
	now := s.now()
	var ch change
	var names [numKinds][]string
	for k := range numKinds {
		for name, it := range next[k] {
			names[k] = append(names[k], name)
			e := idx.entries[k][name]
			if e == nil {
				e = &entry{owner: key}
				idx.entries[k][name] = e
			} else if e.desired == it.hash {
				continue
			}
			e.desired = it.hash
			e.record(version{hash: it.hash, gen: gen, raw: it.raw})
			if e.served == it.hash && !e.servedAt.IsZero() {
				// Back to the content a NACK revert already serves.
				continue
			}
			e.served, e.servedAt = it.hash, now
			ch.upsert(k, name, it.msg)
		}
		slices.Sort(names[k])
	}
	if old := idx.releases[key]; old != nil {
		for k := range numKinds {
			for _, name := range old[k] {
				if _, keep := next[k][name]; !keep {
					delete(idx.entries[k], name)
					ch.deletes[k] = append(ch.deletes[k], name)
				}
			}
		}
	}
	idx.releases[key] = &names
	if res != nil {
		idx.visibility[key] = res.Visibility
	}
	idx.mu.Unlock()

	if err := s.apply(&ch); err != nil {
		return gen, fmt.Errorf("publish %s: %w", key, err)
	}
	s.log.V(1).Info("published release", "key", key, "generation", gen,
		"updated", countUpserts(&ch), "removed", countDeletes(&ch))
	return gen, nil
}

// Remove withdraws every resource of the release key. Removing an unknown
// key does nothing.
func (s *Server) Remove(key string) error {
	defer s.changes.Add(1)
	s.publishMu.Lock()
	defer s.publishMu.Unlock()

	idx := s.idx
	idx.mu.Lock()
	old := idx.releases[key]
	if old == nil {
		idx.mu.Unlock()
		return nil
	}
	var ch change
	for k := range numKinds {
		for _, name := range old[k] {
			delete(idx.entries[k], name)
		}
		ch.deletes[k] = old[k]
	}
	delete(idx.releases, key)
	delete(idx.visibility, key)
	idx.gen++
	idx.mu.Unlock()

	if err := s.apply(&ch); err != nil {
		return fmt.Errorf("remove %s: %w", key, err)
	}
	s.log.V(1).Info("removed release", "key", key, "removed", countDeletes(&ch))
	return nil
}

// apply pushes a change into the caches: upserts from clusters to routes,
// then removals from routes to clusters, so a proxy never sees a reference to
// something it was not given yet.
func (s *Server) apply(ch *change) error {
	var errs []error
	for k := range numKinds {
		if len(ch.upserts[k]) > 0 {
			if err := s.caches[k].UpdateResources(ch.upserts[k], nil); err != nil {
				errs = append(errs, fmt.Errorf("updating %s: %w", kind(k).typeURL(), err))
			}
		}
	}
	for _, k := range []kind{kindListener, kindRoute, kindCluster, kindEndpoint} {
		if len(ch.deletes[k]) > 0 {
			if err := s.caches[k].UpdateResources(nil, ch.deletes[k]); err != nil {
				errs = append(errs, fmt.Errorf("removing %s: %w", k.typeURL(), err))
			}
		}
	}
	return errors.Join(errs...)
}

func countUpserts(ch *change) int {
	n := 0
	for _, m := range ch.upserts {
		n += len(m)
	}
	return n
}

func countDeletes(ch *change) int {
	n := 0
	for _, d := range ch.deletes {
		n += len(d)
	}
	return n
}
