package v1alpha1

// The types in this file carry the fields of Flagger's flagger.app/v1beta1
// schema that serin's own types had no place for, so that a Flagger
// manifest with only its apiVersion changed is accepted. compat.go says,
// field by field, which of them serin honours and why it ignores the rest.

// Provider is the router of a release, in Flagger's values. serin routes
// "istio", "kubernetes" and the empty value (the install default) through
// its own xDS server (and Istio's sidecars when present); "gatewayapi:v1"
// and "gatewayapi:v1beta1" through a Gateway API HTTPRoute (GRPCRoute,
// TCPRoute) that serin writes; "linkerd" (and Flagger's "smi:v1alpha2")
// through an SMI TrafficSplit. The other values are accepted and reported.
// +kubebuilder:validation:Enum=apisix;appmesh;"appmesh:v1beta2";contour;"gatewayapi:v1";"gatewayapi:v1beta1";gloo;istio;knative;kubernetes;kuma;linkerd;nginx;osm;skipper;"smi:v1alpha1";"smi:v1alpha2";"smi:v1alpha3";traefik
type Provider string

// ExternalObjectReference names an object of a router serin does not use
// (ingressRef, routeRef, upstreamRef).
type ExternalObjectReference struct {
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// +optional
	Kind string `json:"kind,omitempty"`
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// ScalerReplicas bounds the replicas of the primary's autoscaler.
type ScalerReplicas struct {
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// +optional
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`
}

// TrafficDistribution is a Service's spec.trafficDistribution.
// +kubebuilder:validation:Enum=PreferClose;PreferSameZone;PreferSameNode
type TrafficDistribution string

// GatewayRef names a Gateway API Gateway (a parentRef of an HTTPRoute).
type GatewayRef struct {
	// +optional
	Group string `json:"group,omitempty"`
	// +optional
	Kind string `json:"kind,omitempty"`
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// +optional
	SectionName string `json:"sectionName,omitempty"`
	// +optional
	Port *int32 `json:"port,omitempty"`
}

// HTTPMirror mirrors requests to another backend.
type HTTPMirror struct {
	// +optional
	BackendRef *BackendRef `json:"backendRef,omitempty"`
}

// BackendRef names a Gateway API backend.
type BackendRef struct {
	// +optional
	Group string `json:"group,omitempty"`
	// +optional
	Kind string `json:"kind,omitempty"`
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// +optional
	Port *int32 `json:"port,omitempty"`
}

// CorsPolicy is a CORS policy of the routes.
type CorsPolicy struct {
	// +optional
	AllowCredentials *bool `json:"allowCredentials,omitempty"`
	// +optional
	AllowHeaders []string `json:"allowHeaders,omitempty"`
	// +optional
	AllowMethods []string `json:"allowMethods,omitempty"`
	// AllowOrigin is the deprecated list of exact origins.
	// +optional
	AllowOrigin []string `json:"allowOrigin,omitempty"`
	// +optional
	AllowOrigins []OriginMatch `json:"allowOrigins,omitempty"`
	// +optional
	ExposeHeaders []string `json:"exposeHeaders,omitempty"`
	// MaxAge as a duration.
	// +optional
	MaxAge string `json:"maxAge,omitempty"`
}

// OriginMatch matches an origin; set one field.
type OriginMatch struct {
	// +optional
	Exact string `json:"exact,omitempty"`
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// +optional
	Regex string `json:"regex,omitempty"`
}

// UnmanagedMetadata lists labels and annotations of the Services that
// others manage and a reconcile must keep.
type UnmanagedMetadata struct {
	// +optional
	Labels []string `json:"labels,omitempty"`
	// +optional
	Annotations []string `json:"annotations,omitempty"`
}

// ConnectionPoolSettings limits connections to the pods.
type ConnectionPoolSettings struct {
	// +optional
	HTTP *HTTPConnectionPool `json:"http,omitempty"`
}

// H2UpgradePolicy says whether HTTP/1.1 connections are upgraded to HTTP/2.
// +kubebuilder:validation:Enum=DEFAULT;DO_NOT_UPGRADE;UPGRADE
type H2UpgradePolicy string

// HTTPConnectionPool limits HTTP connections and requests.
type HTTPConnectionPool struct {
	// +optional
	H2UpgradePolicy H2UpgradePolicy `json:"h2UpgradePolicy,omitempty"`
	// +optional
	HTTP1MaxPendingRequests *int32 `json:"http1MaxPendingRequests,omitempty"`
	// +optional
	HTTP2MaxRequests *int32 `json:"http2MaxRequests,omitempty"`
	// +optional
	IdleTimeout string `json:"idleTimeout,omitempty"`
	// +optional
	MaxRequestsPerConnection *int32 `json:"maxRequestsPerConnection,omitempty"`
	// +optional
	MaxRetries *int32 `json:"maxRetries,omitempty"`
}

// SimpleLB is a load-balancing algorithm.
// +kubebuilder:validation:Enum=ROUND_ROBIN;LEAST_CONN;RANDOM;PASSTHROUGH;LEAST_REQUEST
type SimpleLB string

// LoadBalancerSettings chooses how requests spread over the pods.
type LoadBalancerSettings struct {
	// +optional
	Simple SimpleLB `json:"simple,omitempty"`
	// +optional
	ConsistentHash *ConsistentHashLB `json:"consistentHash,omitempty"`
	// +optional
	LocalityLbSetting *LocalityLoadBalancer `json:"localityLbSetting,omitempty"`
	// +optional
	WarmupDurationSecs string `json:"warmupDurationSecs,omitempty"`
}

// ConsistentHashLB hashes a property of the request onto the pods.
type ConsistentHashLB struct {
	// +optional
	HTTPCookie *HTTPCookie `json:"httpCookie,omitempty"`
	// +optional
	HTTPHeaderName string `json:"httpHeaderName,omitempty"`
	// +optional
	HTTPQueryParameterName string `json:"httpQueryParameterName,omitempty"`
	// +optional
	MinimumRingSize *int64 `json:"minimumRingSize,omitempty"`
	// +optional
	UseSourceIP *bool `json:"useSourceIp,omitempty"`
}

// HTTPCookie is the cookie a consistent hash uses.
type HTTPCookie struct {
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	Path string `json:"path,omitempty"`
	// +optional
	TTL string `json:"ttl,omitempty"`
}

// LocalityLoadBalancer spreads or fails over requests by locality.
type LocalityLoadBalancer struct {
	// +optional
	Distribute []LocalityDistribute `json:"distribute,omitempty"`
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// +optional
	Failover []LocalityFailover `json:"failover,omitempty"`
}

// LocalityDistribute sends the traffic of one locality to others.
type LocalityDistribute struct {
	// +optional
	From string `json:"from,omitempty"`
	// +optional
	To map[string]int32 `json:"to,omitempty"`
}

// LocalityFailover moves traffic to another region when one is unhealthy.
type LocalityFailover struct {
	// +optional
	From string `json:"from,omitempty"`
	// +optional
	To string `json:"to,omitempty"`
}

// OutlierDetection ejects failing pods from the load balancer.
type OutlierDetection struct {
	// +optional
	BaseEjectionTime string `json:"baseEjectionTime,omitempty"`
	// +optional
	Consecutive5xxErrors *int32 `json:"consecutive5xxErrors,omitempty"`
	// +optional
	ConsecutiveErrors *int32 `json:"consecutiveErrors,omitempty"`
	// +optional
	ConsecutiveGatewayErrors *int32 `json:"consecutiveGatewayErrors,omitempty"`
	// +optional
	ConsecutiveLocalOriginFailures *int32 `json:"consecutiveLocalOriginFailures,omitempty"`
	// +optional
	Interval string `json:"interval,omitempty"`
	// +optional
	MaxEjectionPercent *int32 `json:"maxEjectionPercent,omitempty"`
	// +optional
	MinHealthPercent *int32 `json:"minHealthPercent,omitempty"`
	// +optional
	SplitExternalLocalOriginErrors *bool `json:"splitExternalLocalOriginErrors,omitempty"`
}

// SameSite is a cookie's SameSite attribute.
// +kubebuilder:validation:Enum=Strict;Lax;None
type SameSite string
