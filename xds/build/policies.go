package build

import (
	"fmt"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/xds/model"
)

// maxUint32 is what Istio means by "unlimited" in a connection pool.
const maxUint32 = ^uint32(0)

// sessionAffinity is the model of the spec's cookie, with its attributes.
func sessionAffinity(sa *v1alpha1.SessionAffinity) *model.SessionAffinity {
	return &model.SessionAffinity{
		CookieName:        sa.CookieName,
		PrimaryCookieName: sa.PrimaryCookieName,
		MaxAge:            time.Duration(sa.MaxAge) * time.Second,
		Path:              sa.Path,
		Domain:            sa.Domain,
		HTTPOnly:          sa.HTTPOnly,
		Secure:            sa.Secure,
		SameSite:          string(sa.SameSite),
		Partitioned:       sa.Partitioned,
	}
}

// requestMatches are the model of the matches that apply to the released
// port: an entry naming another port never matches a request to this one.
func requestMatches(port uint32, ms []v1alpha1.HTTPMatchRequest) []model.RequestMatch {
	var out []model.RequestMatch
	for _, m := range ms {
		if m.Port != 0 && uint32(m.Port) != port {
			continue
		}
		out = append(out, requestMatch(m))
	}
	return out
}

func requestMatch(m v1alpha1.HTTPMatchRequest) model.RequestMatch {
	out := model.RequestMatch{Name: m.Name, IgnoreURICase: m.IgnoreURICase}
	for _, name := range sortedKeys(m.Headers) {
		out.Headers = append(out.Headers, stringMatch(name, m.Headers[name]))
	}
	for _, name := range sortedKeys(m.WithoutHeaders) {
		out.WithoutHeaders = append(out.WithoutHeaders, stringMatch(name, m.WithoutHeaders[name]))
	}
	for _, name := range sortedKeys(m.QueryParams) {
		out.QueryParams = append(out.QueryParams, stringMatch(name, m.QueryParams[name]))
	}
	out.URI = optionalMatch(m.URI)
	out.Authority = optionalMatch(m.Authority)
	out.Scheme = optionalMatch(m.Scheme)
	if m.Method != nil {
		if m.Method.Exact != "" {
			out.Method = m.Method.Exact
		} else {
			out.MethodPattern = optionalMatch(m.Method)
		}
	}
	return out
}

func optionalMatch(s *v1alpha1.StringMatch) *model.StringMatch {
	if s == nil {
		return nil
	}
	sm := stringMatch("", *s)
	return &sm
}

// cors is the model of Istio's corsPolicy: allowOrigin (exact origins,
// deprecated) and allowOrigins together.
func cors(c *v1alpha1.CorsPolicy) (*model.CORS, error) {
	if c == nil {
		return nil, nil
	}
	out := &model.CORS{
		AllowMethods:     c.AllowMethods,
		AllowHeaders:     c.AllowHeaders,
		ExposeHeaders:    c.ExposeHeaders,
		AllowCredentials: c.AllowCredentials,
	}
	for _, o := range c.AllowOrigin {
		out.AllowOrigins = append(out.AllowOrigins, model.StringMatch{Exact: o})
	}
	for _, o := range c.AllowOrigins {
		out.AllowOrigins = append(out.AllowOrigins, model.StringMatch{Exact: o.Exact, Prefix: o.Prefix, Regex: o.Regex})
	}
	d, err := optionalDuration("service.corsPolicy.maxAge", c.MaxAge)
	out.MaxAge = d
	return out, err
}

// addTrafficPolicy adds the load balancer, outlier detection and
// connection pool of service.trafficPolicy.
func addTrafficPolicy(r *model.Release, tp *v1alpha1.TrafficPolicy) error {
	if tp == nil {
		return nil
	}
	if lb := tp.LoadBalancer; lb != nil {
		m, err := loadBalancer(lb, r.Protocol)
		if err != nil {
			return err
		}
		r.LoadBalancer = m
	}
	if od := tp.OutlierDetection; od != nil {
		m, err := outlierDetection(od)
		if err != nil {
			return err
		}
		r.OutlierDetection = m
	}
	if cp := tp.ConnectionPool; cp != nil && cp.HTTP != nil && r.Protocol != model.TCP {
		m, err := connectionPool(cp.HTTP)
		if err != nil {
			return err
		}
		r.ConnectionPool = m
	}
	return nil
}

// loadBalancer maps Istio's simple policies, warmup and consistent hash.
// LEAST_CONN is Istio's old name of LEAST_REQUEST. PASSTHROUGH (the
// original destination) would bypass the split, so it keeps round robin;
// grpc-go knows no RANDOM, so gRPC releases keep round robin for it too.
// Warmup applies to round robin and least request, as in Istio.
func loadBalancer(lb *v1alpha1.LoadBalancerSettings, p model.Protocol) (*model.LoadBalancer, error) {
	if ch := lb.ConsistentHash; ch != nil && p != model.TCP {
		return consistentHash(ch)
	}
	warmup, err := optionalDuration("service.trafficPolicy.loadBalancer.warmupDurationSecs", lb.WarmupDurationSecs)
	if err != nil {
		return nil, err
	}
	out := &model.LoadBalancer{Policy: model.RoundRobin, Warmup: warmup}
	switch lb.Simple {
	case "LEAST_REQUEST", "LEAST_CONN":
		out.Policy = model.LeastRequest
	case "RANDOM":
		if p != model.GRPC {
			out = &model.LoadBalancer{Policy: model.Random}
		}
	}
	if *out == (model.LoadBalancer{Policy: model.RoundRobin}) {
		return nil, nil
	}
	return out, nil
}

func consistentHash(ch *v1alpha1.ConsistentHashLB) (*model.LoadBalancer, error) {
	h := &model.HashPolicy{Header: ch.HTTPHeaderName, QueryParameter: ch.HTTPQueryParameterName}
	h.SourceIP = ch.UseSourceIP != nil && *ch.UseSourceIP
	if ch.MinimumRingSize != nil && *ch.MinimumRingSize > 0 {
		h.MinimumRingSize = uint64(*ch.MinimumRingSize)
	}
	if c := ch.HTTPCookie; c != nil {
		h.Cookie = &model.HashCookie{Name: c.Name, Path: c.Path}
		if c.TTL != "" {
			ttl, err := optionalDuration("service.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl", c.TTL)
			if err != nil {
				return nil, err
			}
			h.Cookie.TTL = &ttl
		}
	}
	return &model.LoadBalancer{Policy: model.RingHash, Hash: h}, nil
}

func outlierDetection(od *v1alpha1.OutlierDetection) (*model.OutlierDetection, error) {
	out := &model.OutlierDetection{
		Consecutive5xxErrors:           nonNegative(od.Consecutive5xxErrors),
		ConsecutiveGatewayErrors:       nonNegative(od.ConsecutiveGatewayErrors),
		ConsecutiveLocalOriginFailures: nonNegative(od.ConsecutiveLocalOriginFailures),
		SplitExternalLocalOriginErrors: od.SplitExternalLocalOriginErrors != nil && *od.SplitExternalLocalOriginErrors,
		MaxEjectionPercent:             nonNegative(od.MaxEjectionPercent),
	}
	// Istio's deprecated consecutiveErrors counts gateway errors (502, 503,
	// 504) when consecutiveGatewayErrors is not set.
	if out.ConsecutiveGatewayErrors == nil {
		out.ConsecutiveGatewayErrors = nonNegative(od.ConsecutiveErrors)
	}
	var err error
	if out.Interval, err = optionalDuration("service.trafficPolicy.outlierDetection.interval", od.Interval); err != nil {
		return nil, err
	}
	if out.BaseEjectionTime, err = optionalDuration("service.trafficPolicy.outlierDetection.baseEjectionTime", od.BaseEjectionTime); err != nil {
		return nil, err
	}
	return out, nil
}

// connectionPool maps Istio's connectionPool.http: a limit left out is
// unlimited (Istio's 2^32-1), not Envoy's default of 1024.
func connectionPool(h *v1alpha1.HTTPConnectionPool) (*model.ConnectionPool, error) {
	limit := func(v *int32) *uint32 {
		if v == nil || *v <= 0 {
			u := maxUint32
			return &u
		}
		return nonNegative(v)
	}
	out := &model.ConnectionPool{
		MaxPendingRequests: limit(h.HTTP1MaxPendingRequests),
		MaxRequests:        limit(h.HTTP2MaxRequests),
		MaxRetries:         limit(h.MaxRetries),
		HTTP2:              h.H2UpgradePolicy == "UPGRADE",
	}
	if v := h.MaxRequestsPerConnection; v != nil && *v > 0 {
		out.MaxRequestsPerConnection = uint32(*v)
	}
	d, err := optionalDuration("service.trafficPolicy.connectionPool.http.idleTimeout", h.IdleTimeout)
	out.IdleTimeout = d
	return out, err
}

func nonNegative(v *int32) *uint32 {
	if v == nil || *v < 0 {
		return nil
	}
	u := uint32(*v)
	return &u
}

func optionalDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", field, s, err)
	}
	return d, nil
}
