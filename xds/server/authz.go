package server

import (
	"context"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/serin-dev/serin/xds/model"
)

// Who may ask for what. Unless Options.Open is set, a stream is served only
// when its verified client certificate carries a SPIFFE identity,
// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account> (what Istio's
// workload certificates and the certificates serin issues carry), and it is
// sent only the resources of releases visible to that namespace
// (model.Visibility). Everything else follows from what was sent: a NACK
// blames only resources the stream was sent, Applied waits only for streams
// that may see a release, and load reports count only for clusters the
// identity may see.

// ParseSPIFFE reads the namespace and service account of a SPIFFE ID of
// the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
func ParseSPIFFE(id string) (namespace, serviceAccount string, ok bool) {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "spiffe" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", "", false
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" || parts[1] == "" || parts[3] == "" {
		return "", "", false
	}
	return parts[1], parts[3], true
}

// principal is who is on the other end of a stream.
type principal struct {
	identity  string // certificate identity, "" without a verified certificate
	namespace string // from a SPIFFE identity; "" if none
	open      bool   // Options.Open: no access control
}

func (s *Server) principal(ctx context.Context) principal {
	p := principal{identity: peerIdentity(ctx), open: s.opts.Open}
	if ns, _, ok := ParseSPIFFE(p.identity); ok {
		p.namespace = ns
	}
	return p
}

// admitted reports whether the principal may use the server at all.
func (p principal) admitted() bool { return p.open || p.namespace != "" }

// sees reports whether the principal may receive a release.
func (p principal) sees(v model.Visibility) bool { return p.open || v.VisibleTo(p.namespace) }

// errUnauthenticated ends streams of clients without a usable identity.
var errUnauthenticated = status.Error(codes.Unauthenticated,
	"serin's xDS server needs a client certificate with a SPIFFE identity (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)")

// admit fails with errUnauthenticated unless the stream's client may use
// the server.
func (s *Server) admit(ctx context.Context) error {
	if p := s.principal(ctx); !p.admitted() {
		s.metrics.denied.Inc()
		s.log.V(1).Info("refused an xDS stream without an identity", "identity", p.identity)
		return errUnauthenticated
	}
	return nil
}

// visible reports, for each name of kind k, whether the principal may be
// sent it: the name must be published, by a release the principal sees.
func (s *Server) visible(p principal, k kind, names []string) []bool {
	out := make([]bool, len(names))
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	for i, name := range names {
		if e := s.idx.entries[k][name]; e != nil {
			out[i] = p.sees(s.idx.visibility[e.owner])
		}
	}
	return out
}

// filterSotw drops from a state-of-the-world response the resources the
// stream may not receive, and returns what stays, named and hashed. For a
// full-state type a dropped resource reads as "does not exist", which is
// what a stream that may not see it should believe.
func (s *Server) filterSotw(p principal, k kind, resp *discoveryv3.DiscoveryResponse) []sentResource {
	res := make([]sentResource, 0, len(resp.GetResources()))
	names := make([]string, 0, len(resp.GetResources()))
	named := make([]bool, len(resp.GetResources()))
	for i, a := range resp.GetResources() {
		x, ok := s.encoded.lookup(a.GetValue())
		named[i] = ok
		res = append(res, x)
		names = append(names, x.name)
	}
	if p.open {
		return keepNamed(res, named)
	}
	ok := s.visible(p, k, names)
	kept := resp.Resources[:0:0]
	var out []sentResource
	for i, a := range resp.GetResources() {
		if named[i] && ok[i] {
			kept = append(kept, a)
			out = append(out, res[i])
		}
	}
	if len(kept) < len(resp.GetResources()) {
		s.metrics.withheld.WithLabelValues(k.typeURL()).Add(float64(len(resp.GetResources()) - len(kept)))
		resp.Resources = kept
	}
	return out
}

func keepNamed(res []sentResource, named []bool) []sentResource {
	out := res[:0]
	for i, x := range res {
		if named[i] {
			out = append(out, x)
		}
	}
	return out
}

// filterDelta drops from a delta response the resources the stream may not
// receive.
func (s *Server) filterDelta(p principal, k kind, resp *discoveryv3.DeltaDiscoveryResponse) {
	if p.open || len(resp.GetResources()) == 0 {
		return
	}
	names := make([]string, len(resp.GetResources()))
	for i, r := range resp.GetResources() {
		names[i] = r.GetName()
	}
	ok := s.visible(p, k, names)
	kept := resp.Resources[:0:0]
	for i, r := range resp.GetResources() {
		if ok[i] {
			kept = append(kept, r)
		}
	}
	if len(kept) < len(resp.GetResources()) {
		s.metrics.withheld.WithLabelValues(k.typeURL()).Add(float64(len(resp.GetResources()) - len(kept)))
		resp.Resources = kept
	}
}
