package server

import (
	"cmp"
	"slices"
	"time"

	"github.com/serin-dev/serin/xds/model"
)

// AppliedStatus answers "has every subscribed proxy applied generation gen
// of these resources?".
type AppliedStatus struct {
	// Subscribed counts the streams subscribed to at least one of the
	// resources (a wildcard subscription counts).
	Subscribed int
	// Acked counts the subscribed streams that acknowledged, for each of the
	// resources they subscribe to, the content of generation gen or a newer
	// one.
	Acked int
	// Pending are the node IDs of subscribed streams that have not applied
	// it yet and have not rejected it; sorted, without duplicates.
	Pending []string
	// Nacked are the rejections of that content (or newer), by node then
	// resource.
	Nacked []NACK
	// Rejected names the resources (type URL and name) whose last published
	// content was rejected and is not being served.
	Rejected []string
}

// Done reports whether every subscribed stream applied the generation.
func (a AppliedStatus) Done() bool { return a.Acked == a.Subscribed }

// target is one resource Applied looks at: the generation a proxy's content
// must have reached, and the generation of each remembered content.
type target struct {
	kind     kind
	name     string
	required Generation
	history  []version // hash and generation only; at most historyLen
	vis      model.Visibility
}

// gen returns the generation of a content, 0 if it is not remembered.
func (t *target) gen(h contentHash) Generation {
	for _, v := range t.history {
		if v.hash == h {
			return v.gen
		}
	}
	return 0
}

// Applied reports how far the proxies subscribed to names are with
// generation gen. Names are looked up in every type (CDS and EDS resources of
// a release share their names). For each resource, the content in force at
// gen is the newest one published at or before gen; a stream has applied it
// when the content it acknowledged was published in that generation or
// later. Names that are not published (any more) are ignored. Streams that
// are disconnected do not count: a proxy that reconnects is sent the current
// content and counts again once it acknowledges it.
func (s *Server) Applied(names []string, gen Generation) AppliedStatus {
	targets, rejected := s.targets(names, gen)
	var out AppliedStatus
	out.Rejected = rejected
	if len(targets) == 0 {
		return out
	}
	s.tracker.mu.RLock()
	s.tracker.index.eachCandidate(names, func(st *streamState) {
		subscribed, applied, node, nacks := st.applied(targets)
		if !subscribed {
			return
		}
		out.Subscribed++
		switch {
		case applied:
			out.Acked++
		case len(nacks) > 0:
			out.Nacked = append(out.Nacked, nacks...)
		default:
			out.Pending = append(out.Pending, node)
		}
	})
	s.tracker.mu.RUnlock()
	slices.Sort(out.Pending)
	out.Pending = slices.Compact(out.Pending)
	slices.SortFunc(out.Nacked, func(a, b NACK) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.TypeURL, b.TypeURL),
			cmp.Compare(a.Resource, b.Resource), a.Time.Compare(b.Time))
	})
	return out
}

func (s *Server) targets(names []string, gen Generation) ([]target, []string) {
	var out []target
	var rejected []string
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	for k := range numKinds {
		for _, name := range names {
			e := s.idx.entries[k][name]
			if e == nil || len(e.history) == 0 {
				continue
			}
			t := target{kind: k, name: name, history: make([]version, len(e.history)), vis: s.idx.visibility[e.owner]}
			// The content in force at gen; if gen predates the history, the
			// oldest remembered content.
			t.required = e.history[0].gen
			for i, v := range e.history {
				t.history[i] = version{hash: v.hash, gen: v.gen}
				if v.gen <= gen {
					t.required = v.gen
				}
			}
			out = append(out, t)
			if e.served != e.desired {
				rejected = append(rejected, k.typeURL()+" "+name)
			}
		}
	}
	slices.Sort(rejected)
	return out, rejected
}

// applied checks one stream against the targets.
func (st *streamState) applied(targets []target) (subscribed, applied bool, node string, nacks []NACK) {
	st.mu.Lock()
	defer st.mu.Unlock()
	node = st.nodeNameLocked()
	applied = true
	for i := range targets {
		t := &targets[i]
		ts := st.types[t.kind]
		if ts == nil || !ts.subscribed(t.name) || !st.who.sees(t.vis) {
			continue // a stream that may not see a release is never sent it
		}
		subscribed = true
		if h, ok := ts.acked[t.name]; ok && t.gen(h) >= t.required {
			continue
		}
		applied = false
		if m, ok := ts.nack[t.name]; ok && t.gen(m.hash) >= t.required {
			nacks = append(nacks, NACK{
				Node: node, Cluster: st.cluster, Identity: st.identity,
				TypeURL: t.kind.typeURL(), Resource: t.name, Message: m.message, Time: m.at,
			})
		}
	}
	return subscribed, applied && subscribed, node, nacks
}

func (st *streamState) nodeNameLocked() string {
	if st.node != "" {
		return st.node
	}
	return st.identity
}

// ProxyStatus describes one connected xDS stream, for debugging and status
// output.
type ProxyStatus struct {
	Node      string
	Cluster   string
	Identity  string
	Service   string // "ads", "cds", "eds", "lds" or "rds"
	Delta     bool
	Connected time.Time
	Resources []ResourceStatus // by type URL, then name
}

// ResourceStatus is what one stream was sent and acknowledged of one
// resource, as generations (0: not sent, not acknowledged, or content older
// than the remembered history).
type ResourceStatus struct {
	TypeURL  string
	Name     string
	Sent     Generation
	Acked    Generation
	Rejected string // the proxy's message, if it rejected the content sent
}

// Proxies lists the connected streams, by node then stream.
func (s *Server) Proxies() []ProxyStatus {
	s.tracker.mu.RLock()
	streams := make([]*streamState, 0, len(s.tracker.streams))
	for _, st := range s.tracker.streams {
		streams = append(streams, st)
	}
	s.tracker.mu.RUnlock()

	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	genOf := func(k kind, name string, h contentHash) Generation {
		if e := s.idx.entries[k][name]; e != nil {
			if v, ok := e.find(h); ok {
				return v.gen
			}
		}
		return 0
	}
	out := make([]ProxyStatus, 0, len(streams))
	for _, st := range streams {
		st.mu.Lock()
		p := ProxyStatus{
			Node: st.nodeNameLocked(), Cluster: st.cluster, Identity: st.identity,
			Service: st.service, Delta: st.key.delta, Connected: st.opened,
		}
		for k, ts := range st.types {
			if ts == nil {
				continue
			}
			seen := map[string]struct{}{}
			for _, m := range []map[string]contentHash{ts.sent, ts.acked} {
				for name := range m {
					seen[name] = struct{}{}
				}
			}
			for name := range seen {
				r := ResourceStatus{TypeURL: kind(k).typeURL(), Name: name}
				if h, ok := ts.sent[name]; ok {
					r.Sent = genOf(kind(k), name, h)
					if m, ok := ts.nack[name]; ok && m.hash == h {
						r.Rejected = m.message
					}
				}
				if h, ok := ts.acked[name]; ok {
					r.Acked = genOf(kind(k), name, h)
				}
				p.Resources = append(p.Resources, r)
			}
		}
		st.mu.Unlock()
		slices.SortFunc(p.Resources, func(a, b ResourceStatus) int {
			return cmp.Or(cmp.Compare(a.TypeURL, b.TypeURL), cmp.Compare(a.Name, b.Name))
		})
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b ProxyStatus) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Service, b.Service),
			a.Connected.Compare(b.Connected))
	})
	return out
}
