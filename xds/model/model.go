// Package model is serin's intermediate representation of traffic: one
// Release per released service port, in plain structs with yaml tags.
//
// The model is what the rollout engine and the pod watcher fill in and what
// xds/translate turns into Envoy resources. It knows nothing about
// Kubernetes objects or Envoy protos, so it is cheap to build, to compare
// and to write as golden-test input.
package model

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Protocol is the application protocol of a released port.
type Protocol string

// Protocols a release can carry.
const (
	HTTP Protocol = "HTTP"
	GRPC Protocol = "GRPC"
	TCP  Protocol = "TCP"
)

// Release is the traffic state of one released service port:
// <namespace>/<service>/<port>.
type Release struct {
	Namespace string   `yaml:"namespace"`
	Service   string   `yaml:"service"`
	Port      uint32   `yaml:"port"`
	Protocol  Protocol `yaml:"protocol"`
	// Hosts are the names clients use for the service (virtual host domains
	// and listener names, without port). Empty means DefaultHosts.
	Hosts []string `yaml:"hosts,omitempty"`
	// Gateways are Istio gateways (namespace/name) that also route this
	// release; only the Istio glue uses them.
	Gateways []string `yaml:"gateways,omitempty"`
	// ClusterIPs are the Service's cluster IPs. Only the Istio glue uses
	// them, to find a TCP service's own outbound listeners, which Istio
	// names <clusterIP>_<port> (other TCP services on the same port have
	// their own).
	ClusterIPs []string `yaml:"clusterIPs,omitempty"`

	Stable TrackEndpoints `yaml:"stable"`
	Canary TrackEndpoints `yaml:"canary"`

	// CanaryWeight is the share of traffic, 0 to 100, that goes to canary.
	CanaryWeight uint32 `yaml:"canaryWeight"`

	// Match lists request matches that always go to canary (A/B testing).
	// The entries are ORed; the conditions inside one entry are ANDed.
	Match []RequestMatch `yaml:"match,omitempty"`
	// Mirror copies a share of the stable traffic to canary.
	Mirror *Mirror `yaml:"mirror,omitempty"`
	// SessionAffinity pins a client to the track it first landed on.
	SessionAffinity *SessionAffinity `yaml:"sessionAffinity,omitempty"`

	Retries *Retries      `yaml:"retries,omitempty"`
	Timeout time.Duration `yaml:"timeout,omitempty"`
	Rewrite *Rewrite      `yaml:"rewrite,omitempty"`
	Headers *Headers      `yaml:"headers,omitempty"`

	// IstioMutualTLS adds Istio's mTLS transport socket to the clusters.
	IstioMutualTLS bool `yaml:"istioMutualTLS,omitempty"`
	// LoadReporting asks clients to send load reports (LRS) to serin.
	LoadReporting bool `yaml:"loadReporting,omitempty"`

	// ExportTo names the namespaces, besides its own, whose proxies may
	// receive the release, with Istio's exportTo values: "." is the
	// release's own namespace, "*" every namespace. Empty means every
	// namespace (Istio's default).
	ExportTo []string `yaml:"exportTo,omitempty"`
}

// TrackEndpoints are the pods of one track.
type TrackEndpoints struct {
	// Revision is the pod-template hash the track runs.
	Revision  string     `yaml:"revision,omitempty"`
	Endpoints []Endpoint `yaml:"endpoints,omitempty"`
}

// Endpoint is one pod's address for the released port.
type Endpoint struct {
	Pod   string `yaml:"pod,omitempty"`
	IP    string `yaml:"ip"`
	Port  uint32 `yaml:"port"`
	Ready bool   `yaml:"ready"`
}

// RequestMatch is one A/B match: every condition must hold.
type RequestMatch struct {
	Headers     []StringMatch `yaml:"headers,omitempty"`
	QueryParams []StringMatch `yaml:"queryParams,omitempty"`
	URI         *StringMatch  `yaml:"uri,omitempty"`
	Method      string        `yaml:"method,omitempty"`
}

// StringMatch matches a named value (a header, a query parameter) or, for
// URI matches, the path. Exactly one of Exact, Prefix, Suffix, Regex or
// Present is set.
type StringMatch struct {
	Name    string `yaml:"name,omitempty"`
	Exact   string `yaml:"exact,omitempty"`
	Prefix  string `yaml:"prefix,omitempty"`
	Suffix  string `yaml:"suffix,omitempty"`
	Regex   string `yaml:"regex,omitempty"`
	Present bool   `yaml:"present,omitempty"`
}

// Mirror sends a copy of Percent % of the requests that go to stable to
// canary too; canary's answers are dropped.
type Mirror struct {
	Percent uint32 `yaml:"percent"`
}

// SessionAffinity keeps a client on one track with a cookie that carries
// the track's revision.
type SessionAffinity struct {
	CookieName string        `yaml:"cookieName"`
	MaxAge     time.Duration `yaml:"maxAge,omitempty"`
}

// Retries is the retry policy of the default route.
type Retries struct {
	Attempts      uint32        `yaml:"attempts"`
	PerTryTimeout time.Duration `yaml:"perTryTimeout,omitempty"`
	RetryOn       string        `yaml:"retryOn,omitempty"`
}

// Rewrite rewrites the path prefix or the authority of routed requests.
type Rewrite struct {
	URI       string `yaml:"uri,omitempty"`
	Authority string `yaml:"authority,omitempty"`
}

// Headers are added to or removed from requests and responses.
type Headers struct {
	RequestAdd     map[string]string `yaml:"requestAdd,omitempty"`
	RequestRemove  []string          `yaml:"requestRemove,omitempty"`
	ResponseAdd    map[string]string `yaml:"responseAdd,omitempty"`
	ResponseRemove []string          `yaml:"responseRemove,omitempty"`
}

// Key is the release's identity: <namespace>/<service>/<port>.
func (r *Release) Key() string {
	return fmt.Sprintf("%s/%s/%d", r.Namespace, r.Service, r.Port)
}

// Visibility is who may receive the release.
func (r *Release) Visibility() Visibility {
	return Visibility{Namespace: r.Namespace, ExportTo: slices.Clone(r.ExportTo)}
}

// Visibility says which namespaces' proxies may receive a release's
// resources: always its own, and those its ExportTo lists.
type Visibility struct {
	Namespace string
	ExportTo  []string
}

// VisibleTo reports whether proxies of namespace ns may receive the
// release. An empty ns (a proxy without an identity) sees nothing.
func (v Visibility) VisibleTo(ns string) bool {
	if ns == "" {
		return false
	}
	if ns == v.Namespace || len(v.ExportTo) == 0 {
		return true
	}
	for _, e := range v.ExportTo {
		if e == "*" || e == ns || (e == "." && ns == v.Namespace) {
			return true
		}
	}
	return false
}

// ParseExportTo reads Istio's networking.istio.io/exportTo annotation: a
// comma-separated list of namespaces, "." and "*". Blank entries are
// dropped; the result is sorted. An annotation with nothing in it gives
// nil (exported everywhere).
func ParseExportTo(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ClusterName is the name of the weighted cluster (and of its
// ClusterLoadAssignment and route configuration): serin/<ns>/<svc>/<port>.
func (r *Release) ClusterName() string { return "serin/" + r.Key() }

// TrackClusterName is the name of the cluster that holds one track only.
func (r *Release) TrackClusterName(t v1alpha1.Track) string { return r.ClusterName() + "/" + string(t) }

// Clusters are the names of the release's weighted cluster and of its two
// per-track clusters: where load reports about the release are filed.
func (r *Release) Clusters() []string {
	return []string{r.ClusterName(), r.TrackClusterName(v1alpha1.TrackStable), r.TrackClusterName(v1alpha1.TrackCanary)}
}

// RouteName is the name of the route configuration serin serves.
func (r *Release) RouteName() string { return r.ClusterName() }

// DefaultHosts are the names Kubernetes DNS gives a service.
func (r *Release) DefaultHosts() []string {
	return []string{
		fmt.Sprintf("%s.%s.svc.cluster.local", r.Service, r.Namespace),
		fmt.Sprintf("%s.%s.svc", r.Service, r.Namespace),
		fmt.Sprintf("%s.%s", r.Service, r.Namespace),
		r.Service,
	}
}

// EffectiveHosts returns Hosts, or DefaultHosts when none are set.
func (r *Release) EffectiveHosts() []string {
	if len(r.Hosts) > 0 {
		return r.Hosts
	}
	return r.DefaultHosts()
}

// ListenerNames are the names proxyless gRPC clients ask for: each host
// with the port, as in xds:///podinfo.test:9898. Sorted. The bare service
// name is left out: listener names are global to the xDS server, and the
// same service name and port in two namespaces would claim the same
// listener (the second release could not be published at all), so
// proxyless clients dial a name that includes the namespace.
func (r *Release) ListenerNames() []string {
	var out []string
	for _, h := range r.EffectiveHosts() {
		if h == r.Service {
			continue
		}
		out = append(out, fmt.Sprintf("%s:%d", h, r.Port))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Track returns the endpoints of track t.
func (r *Release) Track(t v1alpha1.Track) *TrackEndpoints {
	if t == v1alpha1.TrackCanary {
		return &r.Canary
	}
	return &r.Stable
}

// Validate reports the first thing that makes the release untranslatable.
func (r *Release) Validate() error {
	var errs []error
	if r.Namespace == "" || r.Service == "" {
		errs = append(errs, errors.New("namespace and service are required"))
	}
	if r.Port == 0 || r.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: must be 1 to 65535", r.Port))
	}
	switch r.Protocol {
	case HTTP, GRPC, TCP:
	default:
		errs = append(errs, fmt.Errorf("protocol %q: must be HTTP, GRPC or TCP", r.Protocol))
	}
	if r.CanaryWeight > 100 {
		errs = append(errs, fmt.Errorf("canaryWeight %d: must be 0 to 100", r.CanaryWeight))
	}
	for _, t := range v1alpha1.Tracks {
		for i, ep := range r.Track(t).Endpoints {
			if _, err := netip.ParseAddr(ep.IP); err != nil {
				errs = append(errs, fmt.Errorf("%s.endpoints[%d].ip %q: %w", t, i, ep.IP, err))
			}
			if ep.Port == 0 || ep.Port > 65535 {
				errs = append(errs, fmt.Errorf("%s.endpoints[%d].port %d: must be 1 to 65535", t, i, ep.Port))
			}
		}
	}
	for _, ip := range r.ClusterIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			errs = append(errs, fmt.Errorf("clusterIPs: %w", err))
		}
	}
	for _, h := range r.Hosts {
		if h == "" || strings.ContainsAny(h, " /:") {
			errs = append(errs, fmt.Errorf("hosts: %q is not a host name", h))
		}
	}
	if r.Protocol == TCP && (len(r.Match) > 0 || r.Mirror != nil || r.SessionAffinity != nil || r.Retries != nil || r.Rewrite != nil || r.Headers != nil) {
		errs = append(errs, errors.New("TCP releases support weights only: match, mirror, sessionAffinity, retries, rewrite and headers need HTTP or GRPC"))
	}
	for i, m := range r.Match {
		if err := m.validate(); err != nil {
			errs = append(errs, fmt.Errorf("match[%d]: %w", i, err))
		}
	}
	if r.Mirror != nil && (r.Mirror.Percent == 0 || r.Mirror.Percent > 100) {
		errs = append(errs, fmt.Errorf("mirror.percent %d: must be 1 to 100", r.Mirror.Percent))
	}
	if r.SessionAffinity != nil && !v1alpha1.ValidCookieName(r.SessionAffinity.CookieName) {
		errs = append(errs, fmt.Errorf("sessionAffinity.cookieName %q: must be a cookie token", r.SessionAffinity.CookieName))
	}
	if r.Retries != nil && r.Retries.Attempts == 0 {
		errs = append(errs, errors.New("retries.attempts: must be at least 1"))
	}
	if r.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s: must not be negative", r.Timeout))
	}
	return errors.Join(errs...)
}

func (m *RequestMatch) validate() error {
	if len(m.Headers) == 0 && len(m.QueryParams) == 0 && m.URI == nil && m.Method == "" {
		return errors.New("a match needs at least one condition")
	}
	var errs []error
	for i, h := range m.Headers {
		if h.Name == "" {
			errs = append(errs, fmt.Errorf("headers[%d]: name is required", i))
		}
		if err := h.validate(); err != nil {
			errs = append(errs, fmt.Errorf("headers[%d] (%s): %w", i, h.Name, err))
		}
	}
	for i, q := range m.QueryParams {
		if q.Name == "" {
			errs = append(errs, fmt.Errorf("queryParams[%d]: name is required", i))
		}
		if err := q.validate(); err != nil {
			errs = append(errs, fmt.Errorf("queryParams[%d] (%s): %w", i, q.Name, err))
		}
	}
	if m.URI != nil {
		if err := m.URI.validate(); err != nil {
			errs = append(errs, fmt.Errorf("uri: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (s *StringMatch) validate() error {
	n := 0
	for _, set := range []bool{s.Exact != "", s.Prefix != "", s.Suffix != "", s.Regex != "", s.Present} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("exactly one of exact, prefix, suffix, regex or present must be set")
	}
	if s.Regex != "" {
		// Envoy compiles with RE2; Go's regexp is RE2 syntax too.
		if _, err := regexp.Compile(s.Regex); err != nil {
			return fmt.Errorf("regex %q: %w", s.Regex, err)
		}
	}
	return nil
}
