// Package translate turns a model.Release into the Envoy resources that
// carry it, and validates Envoy resources the way the proxies will.
//
// Translate is a pure function: no I/O, no clock, no logger. The same
// release and options give the same resources byte for byte (Any payloads
// are marshalled deterministically), with every slice sorted by name, so
// the xDS server can hash them into versions and golden files can pin
// them.
//
// # What one release becomes
//
// For the released port <ns>/<svc>/<port>:
//
//   - EDS serin/<ns>/<svc>/<port>: a locality per track with
//     load_balancing_weight 100-w (stable) and w (canary). Traffic weights
//     live here and only here, so a weight step is one small EDS update.
//     A locality at weight 0 is left out. Every locality has an ID (region
//     "serin", sub_zone = track) because grpc-go NACKs localities without
//     one. Endpoints carry filter_metadata["serin"] = {track, revision};
//     pods that are not ready are sent as UNHEALTHY rather than dropped.
//   - EDS …/stable and …/canary: one track each, for A/B and sticky routes
//     and for mirroring.
//   - CDS with the same three names: EDS clusters with locality-weighted
//     balancing (round robin unless the release's load balancer says least
//     request, random or ring hash, with a slow-start window for round
//     robin and least request when it has a warmup; the locality weights
//     split the tracks under every policy). Panic mode is off (healthy_panic_threshold 0): Envoy's
//     default would spread traffic onto unready pods once half of them are
//     unready, which for a canary is exactly the wrong moment. gRPC
//     releases get HTTP/2 upstreams (so does a connection pool that
//     upgrades, with its idle timeout and requests per connection in the
//     same protocol options); outlier detection and the pool's
//     circuit-breaker thresholds follow Istio's meanings and defaults
//     (success-rate ejection off, unset limits unlimited); load reporting
//     adds lrs_server: self
//     (the only value grpc-go accepts); Istio mutual TLS adds the transport
//     socket Istio itself uses (SDS secrets "default" and "ROOTCA" from the
//     local agent's sds-grpc cluster, ALPN istio).
//   - RDS serin/<ns>/<svc>/<port>: one virtual host for every host, bare
//     and with the port. Routes in order: A/B matches → canary; sticky
//     session routes (a Cookie regex for <name>=<revision> of each track
//     that still takes traffic) → that track; the default route → the
//     weighted cluster, with the mirror policy and, under session
//     affinity, a Set-Cookie carrying the serving host's serin.cookie
//     (<name>=<revision>: the primary cookie's name on stable pods when the
//     release has one, the canary cookie's otherwise) with the cookie's
//     attributes. Timeouts, retries, rewrites, header edits, a consistent
//     hash's hash_policy and the CORS policy apply to every route. A/B
//     matches add :authority and :scheme header matchers, inverted
//     matchers for withoutHeaders, case_sensitive false (and (?i) on a
//     regex) for ignoreUriCase; a match's name suffixes its route's name.
//     A service match (Flagger's service.match) narrows every route: each
//     is repeated once per service match with its conditions ANDed, so a
//     request that matches none has no route. A route match has one path
//     condition, so a second one becomes a :path header matcher, which
//     grpc-go cannot match (that copy never fires for it).
//   - LDS, only where serin owns the listener: an API listener per name a
//     proxyless gRPC client dials (host:port; not the bare service name,
//     which services in two namespaces may share), an HTTP connection manager
//     that fetches the RDS above and ends in the router; and, in
//     standalone gateway mode, a socket listener on the release's port
//     (tcp_proxy to the weighted cluster for TCP releases), whose
//     connection manager puts the CORS filter before the router when the
//     release has a CORS policy.
//
// The config source the clusters and listeners use for EDS and RDS is an
// Option: ADS for proxyless gRPC and standalone Envoys; an envoy_grpc
// api_config_source to a static bootstrap cluster (serin-xds) for Istio's
// bootstrap-override mode; a google_grpc source with a target URI for
// Istio without a restart. Every source gets a finite
// initial_fetch_timeout: Envoy's default of 0 (which Istio uses for its
// own sources) would hold a proxy's warming forever if serin were down.
//
// # Where Envoy or grpc-go forced a choice
//
//   - The Set-Cookie value uses %UPSTREAM_METADATA(serin:revision)%.
//     The historical JSON-array spelling %UPSTREAM_METADATA(["serin","revision"])%
//     is deprecated in route headers since Envoy 1.36 and stops being
//     translated once the remove_legacy_route_formatter runtime guard
//     flips; the colon form is the substitution formatter's own syntax.
//   - The weighted route is a plain cluster whose EDS carries the weights,
//     not a weighted_clusters route action: a weight step then touches EDS
//     only, and grpc-go and Envoy both honour locality weights.
//   - grpc-go accepts only ADS or self as EDS/RDS sources, and rejects TLS
//     contexts that name SDS secrets: releases meant for proxyless gRPC use
//     the ADS source without Istio mutual TLS.
//   - Header conditions use HeaderMatcher's own fields (exact_match,
//     prefix_match, suffix_match, safe_regex_match, present_match), not
//     string_match, which Envoy prefers but gRPC C-core reads only after
//     1.51 (Debian 12's python3-grpcio): it NACKs the whole route table.
//     grpc-go and Envoy read both; Envoy counts the older fields as
//     deprecated use.
//   - grpc-go ignores query-parameter matches (the route is skipped),
//     mirroring, header rewrites and Set-Cookie; those are for Envoy.
//   - The CORS policy is a typed_per_filter_config wrapped in a
//     FilterConfig with is_optional: grpc-go, which has no CORS filter,
//     skips it instead of NACKing the routes. The API listeners carry no
//     CORS filter (grpc-go would reject an unknown one); Istio's
//     connection managers already have it.
//   - grpc-go NACKs lb_policy RANDOM, so the builder keeps round robin for
//     gRPC releases that ask for it. grpc-go honours a ring hash with a
//     header hash_policy and skips cookie, query and source-IP policies
//     (it then hashes each RPC at random). Its ring weighs an endpoint by
//     its share of its locality times the locality's weight, which keeps
//     the split (releases without weighted shuffling multiplied the raw
//     weights, skewing the split by the tracks' pod counts).
//   - grpc-go accepts outlier_detection but ejects by success rate and
//     failure percentage only; Istio's consecutive-error counts, which
//     serin translates, take effect in Envoy.
//   - The Set-Cookie's name comes from endpoint metadata, like its value:
//     the default route goes to one weighted cluster and cannot know which
//     track will serve. A request that no host served gets a Set-Cookie
//     without a name=value pair, which browsers ignore, rather than one
//     that clears the user's cookie.
//
// # Validation
//
// Validate runs go-control-plane's ValidateAll on every resource and on
// every message packed in an Any (or a TypedStruct) at any depth — which
// ValidateAll itself never enters — and adds what protoc-gen-validate
// cannot express but Envoy or grpc-go reject: locality weights summing to
// 0, localities without an ID, duplicate endpoint addresses, duplicate
// virtual-host domains, invalid RE2, a hash ring whose minimum size is above
// its maximum, a connection manager whose last (and only last) HTTP filter
// is not the router, a mirror policy without exactly
// one target, weighted clusters summing to 0, and Anys of unknown types.
package translate
