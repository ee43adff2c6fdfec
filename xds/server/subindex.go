package server

import "sync"

// The subscription index maps a resource name to the streams subscribed
// to it, so that Applied looks only at the proxies of the release asked
// about instead of at every stream: with a thousand releases and their
// proxies, a scan of every stream per pending release was a quarter of
// serin's CPU during a burst of releases.

// subIndex is the tracker's index; guarded by tracker.mu.
type subIndex struct {
	byName map[string]map[streamKey]*streamState
	// wildcard are the streams with a wildcard subscription of some type:
	// they are subscribed to every name of that type.
	wildcard map[streamKey]*streamState
}

func newSubIndex() subIndex {
	return subIndex{byName: map[string]map[streamKey]*streamState{}, wildcard: map[streamKey]*streamState{}}
}

// subscriptions are the names a stream subscribes to, over every type, and
// whether any of its types is a wildcard subscription. Caller holds st.mu.
func (st *streamState) subscriptionsLocked() (map[string]struct{}, bool) {
	names := map[string]struct{}{}
	wild := false
	for _, ts := range st.types {
		if ts == nil {
			continue
		}
		if ts.sub.IsWildcard() {
			wild = true
		}
		for name := range ts.sub.SubscribedResources() {
			names[name] = struct{}{}
		}
	}
	return names, wild
}

// reindex files st under what it subscribes to now. A stream's callbacks
// run one at a time, so its entries are never reindexed concurrently.
func (t *tracker) reindex(st *streamState) {
	st.mu.Lock()
	names, wild := st.subscriptionsLocked()
	st.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.streams[st.key] != st {
		return // closed meanwhile
	}
	t.index.set(st, names, wild)
}

// set replaces st's entries with names and wild.
func (x *subIndex) set(st *streamState, names map[string]struct{}, wild bool) {
	for name := range st.indexed {
		if _, ok := names[name]; !ok {
			x.drop(name, st.key)
		}
	}
	for name := range names {
		if _, ok := st.indexed[name]; ok {
			continue
		}
		m := x.byName[name]
		if m == nil {
			m = map[streamKey]*streamState{}
			x.byName[name] = m
		}
		m[st.key] = st
	}
	st.indexed = names
	if wild {
		x.wildcard[st.key] = st
	} else {
		delete(x.wildcard, st.key)
	}
}

// remove drops every entry of st.
func (x *subIndex) remove(st *streamState) {
	for name := range st.indexed {
		x.drop(name, st.key)
	}
	st.indexed = nil
	delete(x.wildcard, st.key)
}

func (x *subIndex) drop(name string, k streamKey) {
	if m := x.byName[name]; m != nil {
		delete(m, k)
		if len(m) == 0 {
			delete(x.byName, name)
		}
	}
}

// eachCandidate calls fn once for every stream that may subscribe to one
// of names: the indexed ones and the wildcard ones. Caller holds t.mu
// (read). A single name without wildcard streams, the common question,
// needs no deduplication.
func (x *subIndex) eachCandidate(names []string, fn func(*streamState)) {
	var only map[streamKey]*streamState
	lists := 0
	for _, name := range names {
		if m := x.byName[name]; len(m) > 0 {
			only = m
			lists++
		}
	}
	if len(x.wildcard) > 0 {
		lists++
	}
	if lists == 1 && only != nil {
		for _, st := range only {
			fn(st)
		}
		return
	}
	seen := seenPool.Get().(map[streamKey]struct{})
	defer func() {
		clear(seen)
		seenPool.Put(seen)
	}()
	visit := func(m map[streamKey]*streamState) {
		for k, st := range m {
			if _, dup := seen[k]; !dup {
				seen[k] = struct{}{}
				fn(st)
			}
		}
	}
	for _, name := range names {
		visit(x.byName[name])
	}
	visit(x.wildcard)
}

var seenPool = sync.Pool{New: func() any { return map[streamKey]struct{}{} }}
