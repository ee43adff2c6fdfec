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
	// GatewayRefs are the parents of the Gateway API route that carries
	// the release when a Gateway API router does (service.gatewayRefs);
	// none means the Service itself (GAMMA).
	GatewayRefs []ParentRef `yaml:"gatewayRefs,omitempty"`
	// Delegation makes the Istio glue's VirtualService a delegate (no
	// hosts, no gateways) that another VirtualService hands routes to.
	Delegation bool `yaml:"delegation,omitempty"`
	// ClusterIPs are the Service's cluster IPs. Only the Istio glue uses
	// them, to find a TCP service's own outbound listeners, which Istio
	// names <clusterIP>_<port> (other TCP services on the same port have
	// their own).
	ClusterIPs []string `yaml:"clusterIPs,omitempty"`

	Stable TrackEndpoints `yaml:"stable"`
	Canary TrackEndpoints `yaml:"canary"`

	// CanaryWeight is the share of traffic, 0 to 100, that goes to canary.
	CanaryWeight uint32 `yaml:"canaryWeight"`

	// ServiceMatch limits every route of the release to the requests that
	// match one of its entries (Flagger's service.match); empty means all.
	ServiceMatch []RequestMatch `yaml:"serviceMatch,omitempty"`
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
	// CORS is the browser cross-origin policy of every route.
	CORS *CORS `yaml:"cors,omitempty"`

	// LoadBalancer picks the pod within a track; the split between the
	// tracks stays the locality weights whatever the policy.
	LoadBalancer *LoadBalancer `yaml:"loadBalancer,omitempty"`
	// OutlierDetection ejects pods that keep failing.
	OutlierDetection *OutlierDetection `yaml:"outlierDetection,omitempty"`
	// ConnectionPool limits the connections and requests to the pods.
	ConnectionPool *ConnectionPool `yaml:"connectionPool,omitempty"`

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

// ParentRef is a Gateway API parent of a release's route: a Gateway (the
// default kind), a listener of one, or a Service (GAMMA). An empty
// Namespace is the release's own.
type ParentRef struct {
	Group       string `yaml:"group,omitempty"`
	Kind        string `yaml:"kind,omitempty"`
	Name        string `yaml:"name"`
	Namespace   string `yaml:"namespace,omitempty"`
	SectionName string `yaml:"sectionName,omitempty"`
	Port        uint32 `yaml:"port,omitempty"`
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
	// Name labels the match's route (Envoy's route name, in access logs).
	Name        string        `yaml:"name,omitempty"`
	Headers     []StringMatch `yaml:"headers,omitempty"`
	QueryParams []StringMatch `yaml:"queryParams,omitempty"`
	URI         *StringMatch  `yaml:"uri,omitempty"`
	Method      string        `yaml:"method,omitempty"`
	// MethodPattern matches the method by prefix, suffix or regex.
	MethodPattern *StringMatch `yaml:"methodPattern,omitempty"`
	// Authority matches the Host (:authority) header.
	Authority *StringMatch `yaml:"authority,omitempty"`
	// Scheme matches the request's scheme (:scheme), http or https.
	Scheme *StringMatch `yaml:"scheme,omitempty"`
	// IgnoreURICase matches URI case-insensitively.
	IgnoreURICase bool `yaml:"ignoreUriCase,omitempty"`
	// WithoutHeaders must all fail to match.
	WithoutHeaders []StringMatch `yaml:"withoutHeaders,omitempty"`
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
// the track's revision: CookieName on the canary's pods, and on the stable
// pods too unless PrimaryCookieName names the stable track's own cookie.
type SessionAffinity struct {
	CookieName        string        `yaml:"cookieName"`
	PrimaryCookieName string        `yaml:"primaryCookieName,omitempty"`
	MaxAge            time.Duration `yaml:"maxAge,omitempty"`
	// Cookie attributes. Path defaults to "/".
	Path        string `yaml:"path,omitempty"`
	Domain      string `yaml:"domain,omitempty"`
	HTTPOnly    bool   `yaml:"httpOnly,omitempty"`
	Secure      bool   `yaml:"secure,omitempty"`
	SameSite    string `yaml:"sameSite,omitempty"`
	Partitioned bool   `yaml:"partitioned,omitempty"`
}

// CookieNameOf is the name of the affinity cookie of track t.
func (s *SessionAffinity) CookieNameOf(t v1alpha1.Track) string {
	if t == v1alpha1.TrackStable && s.PrimaryCookieName != "" {
		return s.PrimaryCookieName
	}
	return s.CookieName
}

// CORS is a cross-origin resource sharing policy (Istio's corsPolicy).
type CORS struct {
	// AllowOrigins match the Origin header; each sets one of Exact,
	// Prefix or Regex.
	AllowOrigins     []StringMatch `yaml:"allowOrigins,omitempty"`
	AllowMethods     []string      `yaml:"allowMethods,omitempty"`
	AllowHeaders     []string      `yaml:"allowHeaders,omitempty"`
	ExposeHeaders    []string      `yaml:"exposeHeaders,omitempty"`
	MaxAge           time.Duration `yaml:"maxAge,omitempty"`
	AllowCredentials *bool         `yaml:"allowCredentials,omitempty"`
}

// LBPolicy is how a proxy picks a pod within a track.
type LBPolicy string

// Load-balancing policies.
const (
	RoundRobin   LBPolicy = "ROUND_ROBIN"
	LeastRequest LBPolicy = "LEAST_REQUEST"
	Random       LBPolicy = "RANDOM"
	RingHash     LBPolicy = "RING_HASH"
)

// LoadBalancer is the policy of the clusters; RingHash needs Hash.
type LoadBalancer struct {
	Policy LBPolicy    `yaml:"policy"`
	Hash   *HashPolicy `yaml:"hash,omitempty"`
	// Warmup ramps a new pod's share of requests up over this window
	// (round robin and least request only).
	Warmup time.Duration `yaml:"warmup,omitempty"`
}

// HashPolicy is what a consistent hash hashes: one of Cookie, Header,
// QueryParameter or SourceIP.
type HashPolicy struct {
	Cookie          *HashCookie `yaml:"cookie,omitempty"`
	Header          string      `yaml:"header,omitempty"`
	QueryParameter  string      `yaml:"queryParameter,omitempty"`
	SourceIP        bool        `yaml:"sourceIP,omitempty"`
	MinimumRingSize uint64      `yaml:"minimumRingSize,omitempty"`
}

// HashCookie is a cookie hashed on. With a TTL the proxy sets it when the
// request has none; a TTL of 0 makes that a session cookie.
type HashCookie struct {
	Name string         `yaml:"name"`
	Path string         `yaml:"path,omitempty"`
	TTL  *time.Duration `yaml:"ttl,omitempty"`
}

// OutlierDetection ejects pods on consecutive errors, with Istio's
// meanings: a nil count leaves the proxy's default, 0 turns the check off.
type OutlierDetection struct {
	Consecutive5xxErrors           *uint32       `yaml:"consecutive5xxErrors,omitempty"`
	ConsecutiveGatewayErrors       *uint32       `yaml:"consecutiveGatewayErrors,omitempty"`
	ConsecutiveLocalOriginFailures *uint32       `yaml:"consecutiveLocalOriginFailures,omitempty"`
	SplitExternalLocalOriginErrors bool          `yaml:"splitExternalLocalOriginErrors,omitempty"`
	Interval                       time.Duration `yaml:"interval,omitempty"`
	BaseEjectionTime               time.Duration `yaml:"baseEjectionTime,omitempty"`
	MaxEjectionPercent             *uint32       `yaml:"maxEjectionPercent,omitempty"`
}

// ConnectionPool limits the requests to the pods (Istio's
// connectionPool.http). Limits left nil are unlimited, as in Istio.
type ConnectionPool struct {
	MaxPendingRequests       *uint32       `yaml:"maxPendingRequests,omitempty"`
	MaxRequests              *uint32       `yaml:"maxRequests,omitempty"`
	MaxRetries               *uint32       `yaml:"maxRetries,omitempty"`
	MaxRequestsPerConnection uint32        `yaml:"maxRequestsPerConnection,omitempty"`
	IdleTimeout              time.Duration `yaml:"idleTimeout,omitempty"`
	// HTTP2 upgrades HTTP/1.1 releases to HTTP/2 towards the pods.
	HTTP2 bool `yaml:"http2,omitempty"`
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
	if r.Protocol == TCP && (len(r.Match) > 0 || len(r.ServiceMatch) > 0 || r.Mirror != nil || r.SessionAffinity != nil || r.Retries != nil || r.Rewrite != nil || r.Headers != nil) {
		errs = append(errs, errors.New("TCP releases support weights only: match, mirror, sessionAffinity, retries, rewrite and headers need HTTP or GRPC"))
	}
	for i, m := range r.Match {
		if err := m.validate(); err != nil {
			errs = append(errs, fmt.Errorf("match[%d]: %w", i, err))
		}
	}
	for i, m := range r.ServiceMatch {
		if err := m.validate(); err != nil {
			errs = append(errs, fmt.Errorf("serviceMatch[%d]: %w", i, err))
		}
	}
	if r.Mirror != nil && (r.Mirror.Percent == 0 || r.Mirror.Percent > 100) {
		errs = append(errs, fmt.Errorf("mirror.percent %d: must be 1 to 100", r.Mirror.Percent))
	}
	if r.SessionAffinity != nil {
		if err := r.SessionAffinity.validate(); err != nil {
			errs = append(errs, fmt.Errorf("sessionAffinity: %w", err))
		}
	}
	errs = append(errs, r.validatePolicies()...)
	if r.Retries != nil && r.Retries.Attempts == 0 {
		errs = append(errs, errors.New("retries.attempts: must be at least 1"))
	}
	if r.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s: must not be negative", r.Timeout))
	}
	return errors.Join(errs...)
}

func (m *RequestMatch) validate() error {
	if len(m.Headers) == 0 && len(m.QueryParams) == 0 && m.URI == nil && m.Method == "" && m.MethodPattern == nil &&
		m.Authority == nil && m.Scheme == nil && len(m.WithoutHeaders) == 0 {
		return errors.New("a match needs at least one condition")
	}
	var errs []error
	for field, list := range map[string][]StringMatch{"headers": m.Headers, "withoutHeaders": m.WithoutHeaders} {
		for i, h := range list {
			if h.Name == "" {
				errs = append(errs, fmt.Errorf("%s[%d]: name is required", field, i))
			}
			if err := h.validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s[%d] (%s): %w", field, i, h.Name, err))
			}
		}
	}
	for field, sm := range map[string]*StringMatch{"authority": m.Authority, "scheme": m.Scheme, "methodPattern": m.MethodPattern} {
		if sm == nil {
			continue
		}
		if err := sm.validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
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

// cookieAttrRE is what a cookie's Path or Domain may hold: no separator,
// no control character, no % (Envoy's formatter would read it).
var cookieAttrRE = regexp.MustCompile(`^[!#$&-+\--:<-~]*$`)

func (s *SessionAffinity) validate() error {
	var errs []error
	if !v1alpha1.ValidCookieName(s.CookieName) {
		errs = append(errs, fmt.Errorf("cookieName %q: must be a cookie token", s.CookieName))
	}
	if s.PrimaryCookieName != "" && (!v1alpha1.ValidCookieName(s.PrimaryCookieName) || s.PrimaryCookieName == s.CookieName) {
		errs = append(errs, fmt.Errorf("primaryCookieName %q: must be a cookie token other than cookieName", s.PrimaryCookieName))
	}
	for name, v := range map[string]string{"path": s.Path, "domain": s.Domain} {
		if !cookieAttrRE.MatchString(v) {
			errs = append(errs, fmt.Errorf("%s %q: must be printable ASCII without ';', ',', spaces or '%%'", name, v))
		}
	}
	switch s.SameSite {
	case "", "Strict", "Lax", "None":
	default:
		errs = append(errs, fmt.Errorf("sameSite %q: must be Strict, Lax or None", s.SameSite))
	}
	return errors.Join(errs...)
}

// maxRingSize is the largest ring grpc-go (and Envoy's default) allows.
const maxRingSize = 8 * 1024 * 1024

// validatePolicies checks CORS and the cluster policies.
func (r *Release) validatePolicies() []error {
	var errs []error
	if r.Protocol == TCP && (r.CORS != nil || r.ConnectionPool != nil || (r.LoadBalancer != nil && r.LoadBalancer.Hash != nil)) {
		errs = append(errs, errors.New("TCP releases take no cors, connectionPool or consistent hash"))
	}
	if c := r.CORS; c != nil {
		for i, o := range c.AllowOrigins {
			if err := o.validate(); err != nil || o.Present {
				errs = append(errs, fmt.Errorf("cors.allowOrigins[%d]: set one of exact, prefix, suffix or regex", i))
			}
		}
		if c.MaxAge < 0 {
			errs = append(errs, fmt.Errorf("cors.maxAge %s: must not be negative", c.MaxAge))
		}
	}
	if lb := r.LoadBalancer; lb != nil {
		switch lb.Policy {
		case RoundRobin, LeastRequest, Random:
			if lb.Hash != nil {
				errs = append(errs, fmt.Errorf("loadBalancer: a hash needs policy %s", RingHash))
			}
			if lb.Warmup < 0 || (lb.Warmup > 0 && lb.Policy == Random) {
				errs = append(errs, fmt.Errorf("loadBalancer.warmup %s: needs ROUND_ROBIN or LEAST_REQUEST and must not be negative", lb.Warmup))
			}
		case RingHash:
			if err := lb.Hash.validate(); err != nil {
				errs = append(errs, fmt.Errorf("loadBalancer.hash: %w", err))
			}
		default:
			errs = append(errs, fmt.Errorf("loadBalancer.policy %q: must be ROUND_ROBIN, LEAST_REQUEST, RANDOM or RING_HASH", lb.Policy))
		}
	}
	if od := r.OutlierDetection; od != nil && od.MaxEjectionPercent != nil && *od.MaxEjectionPercent > 100 {
		errs = append(errs, fmt.Errorf("outlierDetection.maxEjectionPercent %d: must be 0 to 100", *od.MaxEjectionPercent))
	}
	return errs
}

func (h *HashPolicy) validate() error {
	if h == nil {
		return errors.New("required with RING_HASH")
	}
	n := 0
	for _, set := range []bool{h.Cookie != nil, h.Header != "", h.QueryParameter != "", h.SourceIP} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("set exactly one of cookie, header, queryParameter or sourceIP")
	}
	if h.Cookie != nil && !v1alpha1.ValidCookieName(h.Cookie.Name) {
		return fmt.Errorf("cookie.name %q: must be a cookie token", h.Cookie.Name)
	}
	if h.MinimumRingSize > maxRingSize {
		return fmt.Errorf("minimumRingSize %d: must be at most %d", h.MinimumRingSize, maxRingSize)
	}
	return nil
}
