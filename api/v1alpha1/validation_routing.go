package v1alpha1

import (
	"regexp"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxRingSize is the largest consistent-hash ring Envoy and grpc-go build.
const maxRingSize = 8 * 1024 * 1024

// cookieAttribute is what a cookie's Path or Domain may hold: printable
// ASCII without ';', ',', '"', '%' or spaces.
var cookieAttribute = regexp.MustCompile(`^[!#$&-+\--:<-~]*$`)

// validateRouting checks corsPolicy and trafficPolicy's load balancer,
// outlier detection and connection pool.
func validateRouting(s *CanaryService, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c := s.CorsPolicy; c != nil {
		cp := p.Child("corsPolicy")
		for i, o := range c.AllowOrigins {
			sm := StringMatch{Exact: o.Exact, Prefix: o.Prefix, Regex: o.Regex}
			errs = append(errs, validateStringMatch(&sm, cp.Child("allowOrigins").Index(i))...)
		}
		errs = append(errs, durationOrZero(cp.Child("maxAge"), c.MaxAge)...)
		for name, list := range map[string][]string{"allowHeaders": c.AllowHeaders, "exposeHeaders": c.ExposeHeaders, "allowMethods": c.AllowMethods} {
			for i, h := range list {
				if h != "*" && len(validation.IsHTTPHeaderName(h)) > 0 {
					errs = append(errs, field.Invalid(cp.Child(name).Index(i), h, "must be a header name (or method token) or *"))
				}
			}
		}
	}
	tp := s.TrafficPolicy
	if tp == nil {
		return errs
	}
	tpp := p.Child("trafficPolicy")
	if lb := tp.LoadBalancer; lb != nil {
		errs = append(errs, durationOrZero(tpp.Child("loadBalancer", "warmupDurationSecs"), lb.WarmupDurationSecs)...)
		if lb.ConsistentHash != nil {
			errs = append(errs, validateConsistentHash(lb.ConsistentHash, tpp.Child("loadBalancer", "consistentHash"))...)
		}
	}
	if od := tp.OutlierDetection; od != nil {
		op := tpp.Child("outlierDetection")
		errs = append(errs, durationOrZero(op.Child("interval"), od.Interval)...)
		errs = append(errs, durationOrZero(op.Child("baseEjectionTime"), od.BaseEjectionTime)...)
		if v := od.MaxEjectionPercent; v != nil && (*v < 0 || *v > 100) {
			errs = append(errs, field.Invalid(op.Child("maxEjectionPercent"), *v, "must be a percentage from 0 to 100"))
		}
	}
	if cp := tp.ConnectionPool; cp != nil && cp.HTTP != nil {
		errs = append(errs, durationOrZero(tpp.Child("connectionPool", "http", "idleTimeout"), cp.HTTP.IdleTimeout)...)
	}
	return errs
}

func validateConsistentHash(ch *ConsistentHashLB, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	for _, set := range []bool{ch.HTTPCookie != nil, ch.HTTPHeaderName != "", ch.HTTPQueryParameterName != "", ch.UseSourceIP != nil && *ch.UseSourceIP} {
		if set {
			n++
		}
	}
	if n != 1 {
		errs = append(errs, field.Invalid(p, "", "set exactly one of httpCookie, httpHeaderName, httpQueryParameterName or useSourceIp"))
	}
	if c := ch.HTTPCookie; c != nil {
		if !ValidCookieName(c.Name) {
			errs = append(errs, field.Invalid(p.Child("httpCookie", "name"), c.Name, "must be a cookie token (letters, digits and !#$%&'*+-.^_`|~)"))
		}
		if c.TTL != "" {
			if d, err := time.ParseDuration(c.TTL); err != nil || d < 0 {
				errs = append(errs, field.Invalid(p.Child("httpCookie", "ttl"), c.TTL, "must be a duration such as \"1h\" (0s for a session cookie)"))
			}
		}
	}
	if ch.HTTPHeaderName != "" && len(validation.IsHTTPHeaderName(ch.HTTPHeaderName)) > 0 {
		errs = append(errs, field.Invalid(p.Child("httpHeaderName"), ch.HTTPHeaderName, "must be a header name"))
	}
	if v := ch.MinimumRingSize; v != nil && (*v < 0 || *v > maxRingSize) {
		errs = append(errs, field.Invalid(p.Child("minimumRingSize"), *v, "must be from 0 to 8388608"))
	}
	return errs
}

// validateCookieAttributes checks primaryCookieName and the attributes
// that go into the Set-Cookie header.
func validateCookieAttributes(sa *SessionAffinity, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if n := sa.PrimaryCookieName; n != "" && (!ValidCookieName(n) || n == sa.CookieName) {
		errs = append(errs, field.Invalid(p.Child("primaryCookieName"), n, "must be a cookie token (letters, digits and !#$%&'*+-.^_`|~) other than cookieName"))
	}
	for name, v := range map[string]string{"path": sa.Path, "domain": sa.Domain} {
		if !cookieAttribute.MatchString(v) {
			errs = append(errs, field.Invalid(p.Child(name), v, "must be printable ASCII without ';', ',', '\"', '%' or spaces"))
		}
	}
	return errs
}

// durationOrZero accepts an empty value or a duration of 0 or more.
func durationOrZero(p *field.Path, v string) field.ErrorList {
	if v == "" {
		return nil
	}
	if d, err := time.ParseDuration(v); err != nil || d < 0 {
		return field.ErrorList{field.Invalid(p, v, "must be a duration such as \"30s\" or \"1m\"")}
	}
	return nil
}
