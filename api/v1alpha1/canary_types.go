package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Canary is a progressive release of one Deployment: the spec says how
// traffic moves and how the canary is judged, the status holds every bit
// of release state, so a restarted controller resumes where it stopped.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cn;canaries,categories=all;serin
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.canaryWeight`
// +kubebuilder:printcolumn:name="FailedChecks",type=integer,JSONPath=`.status.failedChecks`,priority=1
// +kubebuilder:printcolumn:name="Interval",type=string,JSONPath=`.spec.analysis.interval`,priority=1
// +kubebuilder:printcolumn:name="StepWeight",type=integer,JSONPath=`.spec.analysis.stepWeight`,priority=1
// +kubebuilder:printcolumn:name="MaxWeight",type=integer,JSONPath=`.spec.analysis.maxWeight`,priority=1
// +kubebuilder:printcolumn:name="LastTransitionTime",type=string,JSONPath=`.status.lastTransitionTime`
type Canary struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CanarySpec   `json:"spec"`
	Status CanaryStatus `json:"status,omitempty"`
}

// CanaryList is a list of Canaries.
//
// +kubebuilder:object:root=true
type CanaryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Canary `json:"items"`
}

// CanarySpec has Flagger's shape, so a Flagger Canary reads the same here,
// plus serin's own knobs (canaryReplicas, judge, loadReports).
type CanarySpec struct {
	// TargetRef is the Deployment this Canary releases. It must be in the
	// Canary's namespace.
	TargetRef LocalObjectReference `json:"targetRef"`

	// AutoscalerRef is an HPA or a KEDA ScaledObject of the target; serin
	// copies it for the canary copy.
	// +optional
	AutoscalerRef *AutoscalerReference `json:"autoscalerRef,omitempty"`

	// ProgressDeadlineSeconds is how long the canary may take to become
	// ready, and how long a release may see no traffic, before it fails.
	// Defaults to 600.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`

	// SkipAnalysis promotes a ready canary without analysis.
	// +optional
	SkipAnalysis bool `json:"skipAnalysis,omitempty"`

	// Suspend stops the release where it is: no step, no promotion, no
	// rollback, traffic unchanged.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// RevertOnDeletion gives the Deployment back as applied when this
	// Canary is deleted: unpaused (a held revision then rolls out) and
	// serin's annotations removed, even if the Deployment keeps its
	// serin.dev/canary annotation. Without it, such a Deployment stays
	// held and the Canary serin makes from the annotation takes over.
	// Deployments that are no longer opted in are always given back, and
	// serin's own objects (copy, traffic) are always removed.
	// +optional
	RevertOnDeletion bool `json:"revertOnDeletion,omitempty"`

	// Service is the port serin splits traffic on.
	// +optional
	Service CanaryService `json:"service,omitempty"`

	// Analysis says how traffic moves and how the canary is judged.
	// +optional
	Analysis *CanaryAnalysis `json:"analysis,omitempty"`

	// CanaryReplicas is how many pods the canary copy runs.
	// +optional
	CanaryReplicas *CanaryReplicas `json:"canaryReplicas,omitempty"`

	// Judge chooses how metric values become a verdict.
	// +optional
	Judge *Judge `json:"judge,omitempty"`

	// LoadReports makes the data plane's load reports (LRS) a source of
	// verdicts, beside or instead of Prometheus.
	// +optional
	LoadReports *LoadReports `json:"loadReports,omitempty"`

	// MinProxies is how many subscribed proxies must have applied a
	// traffic change before it counts as applied. With 0 (serin's install
	// default, --min-proxies), a change with nobody subscribed counts as
	// applied and the TrafficApplied condition says NoProxies; set it where
	// no proxy at all means a misconfigured mesh.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinProxies *int32 `json:"minProxies,omitempty"`

	// Flagger's fields (see compat.go for what serin makes of each).

	// Provider is Flagger's router; serin routes through its own xDS
	// server (and Istio's sidecars), so this is accepted and reported.
	// +optional
	Provider Provider `json:"provider,omitempty"`
	// MetricsServer is Flagger's default Prometheus address.
	// +optional
	MetricsServer string `json:"metricsServer,omitempty"`
	// IngressRef names an Ingress (Flagger's nginx provider).
	// +optional
	IngressRef *ExternalObjectReference `json:"ingressRef,omitempty"`
	// RouteRef names an ApisixRoute (Flagger's apisix provider).
	// +optional
	RouteRef *ExternalObjectReference `json:"routeRef,omitempty"`
	// UpstreamRef names a Gloo Upstream (Flagger's gloo provider).
	// +optional
	UpstreamRef *ExternalObjectReference `json:"upstreamRef,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// +optional
	Kind string `json:"kind,omitempty"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// AutoscalerReference names an autoscaler of the target.
type AutoscalerReference struct {
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// +optional
	Kind string `json:"kind,omitempty"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// PrimaryScalerQueries are KEDA queries of the primary's ScaledObject.
	// +optional
	PrimaryScalerQueries map[string]string `json:"primaryScalerQueries,omitempty"`
	// PrimaryScalerReplicas bounds the primary's autoscaler.
	// +optional
	PrimaryScalerReplicas *ScalerReplicas `json:"primaryScalerReplicas,omitempty"`
}

// CrossNamespaceObjectReference names an object, by default in the
// Canary's namespace.
type CrossNamespaceObjectReference struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// AppProtocol is the protocol of the released port.
// +kubebuilder:validation:Enum=http;http2;grpc;tcp;HTTP;HTTP2;GRPC;TCP
type AppProtocol string

// CanaryService is the released service port and its routing options.
type CanaryService struct {
	// Name of the service; defaults to the target's name.
	// +optional
	Name string `json:"name,omitempty"`
	// Port of the service; defaults to the target's first container port.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// TargetPort is the container port (number or name); defaults to Port.
	// +optional
	TargetPort intstr.IntOrString `json:"targetPort,omitempty"`
	// PortName names the port; defaults to "http" (or "grpc", "tcp").
	// +optional
	PortName string `json:"portName,omitempty"`
	// AppProtocol is http (default), http2, grpc or tcp.
	// +optional
	AppProtocol AppProtocol `json:"appProtocol,omitempty"`
	// Hosts are extra names of the service (virtual host domains).
	// +optional
	Hosts []string `json:"hosts,omitempty"`
	// Gateways are Istio gateways (namespace/name) that also route it.
	// +optional
	Gateways []string `json:"gateways,omitempty"`
	// Match limits the routes serin manages to these requests.
	// +optional
	Match []HTTPMatchRequest `json:"match,omitempty"`
	// Rewrite rewrites the path or authority.
	// +optional
	Rewrite *HTTPRewrite `json:"rewrite,omitempty"`
	// Retries is the retry policy.
	// +optional
	Retries *HTTPRetry `json:"retries,omitempty"`
	// Timeout of a request, as a duration.
	// +optional
	Timeout string `json:"timeout,omitempty"`
	// Headers to add or remove on requests and responses.
	// +optional
	Headers *Headers `json:"headers,omitempty"`
	// TrafficPolicy is the TLS mode towards the pods.
	// +optional
	TrafficPolicy *TrafficPolicy `json:"trafficPolicy,omitempty"`
	// Apex is metadata for the Service <name> when serin makes it (there
	// was none of that name, as in Flagger's tutorials); serin never
	// modifies a Service <name> of the user's own.
	// +optional
	Apex *CustomMetadata `json:"apex,omitempty"`
	// Canary is metadata for the Service <name>-canary, which serin owns
	// and which selects the canary pods only.
	// +optional
	Canary *CustomMetadata `json:"canary,omitempty"`
	// Primary is metadata for the Service <name>-primary, which serin owns
	// and which selects the stable pods only.
	// +optional
	Primary *CustomMetadata `json:"primary,omitempty"`

	// Flagger's fields (see compat.go for what serin makes of each).

	// TrafficDistribution of the Services serin makes.
	// +optional
	TrafficDistribution TrafficDistribution `json:"trafficDistribution,omitempty"`
	// PortDiscovery exposes every container port of the pod template, not
	// only Port, on the Services serin makes.
	// +optional
	PortDiscovery bool `json:"portDiscovery,omitempty"`
	// Headless makes <name>-canary and <name>-primary headless (the apex
	// Service serin makes keeps its cluster IP: clients address it).
	// +optional
	Headless bool `json:"headless,omitempty"`
	// BackendTimeout is the timeout towards the backend (Gateway API).
	// +optional
	BackendTimeout string `json:"backendTimeout,omitempty"`
	// MeshName is the App Mesh mesh.
	// +optional
	MeshName string `json:"meshName,omitempty"`
	// Backends are App Mesh virtual-service backends.
	// +optional
	Backends []string `json:"backends,omitempty"`
	// Delegation makes the route a delegate of another Istio VirtualService.
	// +optional
	Delegation bool `json:"delegation,omitempty"`
	// Mirror lists Gateway API mirror backends.
	// +optional
	Mirror []HTTPMirror `json:"mirror,omitempty"`
	// GatewayRefs are Gateway API Gateways that route the service.
	// +optional
	GatewayRefs []GatewayRef `json:"gatewayRefs,omitempty"`
	// CorsPolicy of the routes.
	// +optional
	CorsPolicy *CorsPolicy `json:"corsPolicy,omitempty"`
	// UnmanagedMetadata lists the keys of labels and annotations that
	// others set on the Services serin makes, which serin keeps.
	// +optional
	UnmanagedMetadata *UnmanagedMetadata `json:"unmanagedMetadata,omitempty"`
}

// CustomMetadata are labels and annotations for an object serin makes.
type CustomMetadata struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// HTTPMatchRequest selects requests; every condition must hold.
type HTTPMatchRequest struct {
	// +optional
	Headers map[string]StringMatch `json:"headers,omitempty"`
	// +optional
	QueryParams map[string]StringMatch `json:"queryParams,omitempty"`
	// +optional
	URI *StringMatch `json:"uri,omitempty"`
	// +optional
	Method *StringMatch `json:"method,omitempty"`

	// Flagger's (Istio's) further match conditions.

	// +optional
	Authority *StringMatch `json:"authority,omitempty"`
	// +optional
	Gateways []string `json:"gateways,omitempty"`
	// +optional
	IgnoreURICase bool `json:"ignoreUriCase,omitempty"`
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	Port int32 `json:"port,omitempty"`
	// +optional
	Scheme *StringMatch `json:"scheme,omitempty"`
	// +optional
	SourceLabels map[string]string `json:"sourceLabels,omitempty"`
	// +optional
	SourceNamespace string `json:"sourceNamespace,omitempty"`
	// +optional
	WithoutHeaders map[string]StringMatch `json:"withoutHeaders,omitempty"`
}

// StringMatch matches a string; set exactly one field.
type StringMatch struct {
	// +optional
	Exact string `json:"exact,omitempty"`
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// +optional
	Suffix string `json:"suffix,omitempty"`
	// Regex is an RE2 expression matched against the whole value.
	// +optional
	Regex string `json:"regex,omitempty"`
	// Present matches when the header or parameter is there at all.
	// +optional
	Present bool `json:"present,omitempty"`
}

// HTTPRewrite rewrites matched requests.
type HTTPRewrite struct {
	// +optional
	URI string `json:"uri,omitempty"`
	// +optional
	Authority string `json:"authority,omitempty"`

	// Type is Gateway API's path rewrite type (ReplaceFullPath or
	// ReplacePrefixMatch).
	// +optional
	Type string `json:"type,omitempty"`
}

// HTTPRetry is a retry policy.
type HTTPRetry struct {
	// +kubebuilder:validation:Minimum=0
	Attempts int32 `json:"attempts"`
	// +optional
	PerTryTimeout string `json:"perTryTimeout,omitempty"`
	// RetryOn is Envoy's retry_on list, e.g. "5xx,reset".
	// +optional
	RetryOn string `json:"retryOn,omitempty"`
}

// Headers manipulates request and response headers.
type Headers struct {
	// +optional
	Request *HeaderOperations `json:"request,omitempty"`
	// +optional
	Response *HeaderOperations `json:"response,omitempty"`
}

// HeaderOperations sets, adds or removes headers.
type HeaderOperations struct {
	// +optional
	Set map[string]string `json:"set,omitempty"`
	// +optional
	Add map[string]string `json:"add,omitempty"`
	// +optional
	Remove []string `json:"remove,omitempty"`
}

// TrafficPolicy is the traffic policy towards the pods.
type TrafficPolicy struct {
	// +optional
	TLS *TLSSettings `json:"tls,omitempty"`

	// +optional
	ConnectionPool *ConnectionPoolSettings `json:"connectionPool,omitempty"`
	// +optional
	LoadBalancer *LoadBalancerSettings `json:"loadBalancer,omitempty"`
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
}

// TLSMode is how proxies talk to the pods.
// +kubebuilder:validation:Enum=DISABLE;SIMPLE;MUTUAL;ISTIO_MUTUAL
type TLSMode string

// TLS modes.
const (
	TLSDisable     TLSMode = "DISABLE"
	TLSIstioMutual TLSMode = "ISTIO_MUTUAL"
)

// TLSSettings is the TLS towards the pods.
type TLSSettings struct {
	Mode TLSMode `json:"mode"`

	// Flagger's (Istio's) client TLS fields, for SIMPLE and MUTUAL.

	// +optional
	CACertificates string `json:"caCertificates,omitempty"`
	// +optional
	ClientCertificate string `json:"clientCertificate,omitempty"`
	// +optional
	PrivateKey string `json:"privateKey,omitempty"`
	// +optional
	SNI string `json:"sni,omitempty"`
	// +optional
	SubjectAltNames []string `json:"subjectAltNames,omitempty"`
}

// CanaryAnalysis says how traffic moves and how the canary is judged.
type CanaryAnalysis struct {
	// Interval between two steps, as a duration ("1m"). Defaults to 1m.
	// +optional
	Interval string `json:"interval,omitempty"`
	// Threshold is how many failed checks roll the release back.
	// Defaults to 5.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Threshold int32 `json:"threshold,omitempty"`
	// MaxWeight is the highest canary weight before promotion.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxWeight int32 `json:"maxWeight,omitempty"`
	// StepWeight is the weight added at each step.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	StepWeight int32 `json:"stepWeight,omitempty"`
	// StepWeights lists the canary weights, ascending, instead of
	// stepWeight and maxWeight.
	// +optional
	StepWeights []int32 `json:"stepWeights,omitempty"`
	// StepWeightPromotion moves the rest of the traffic to the canary in
	// steps of this size before the Deployment is rolled; 0 promotes at once.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	StepWeightPromotion int32 `json:"stepWeightPromotion,omitempty"`
	// Iterations is the number of checks of a blue/green or A/B release.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Iterations int32 `json:"iterations,omitempty"`
	// Match sends these requests to the canary (A/B testing, with
	// iterations).
	// +optional
	Match []HTTPMatchRequest `json:"match,omitempty"`
	// Mirror copies live traffic to the canary: during the iterations of a
	// blue/green release, or for one interval before a weighted one.
	// +optional
	Mirror bool `json:"mirror,omitempty"`
	// MirrorWeight is the share of requests mirrored, 1 to 100 (default 100).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MirrorWeight int32 `json:"mirrorWeight,omitempty"`
	// SessionAffinity keeps a user on the track it first landed on.
	// +optional
	SessionAffinity *SessionAffinity `json:"sessionAffinity,omitempty"`
	// Metrics are checked every interval.
	// +optional
	Metrics []CanaryMetric `json:"metrics,omitempty"`
	// Webhooks are called at the points of the release their type names.
	// +optional
	Webhooks []CanaryWebhook `json:"webhooks,omitempty"`
	// Alerts say where notifications go.
	// +optional
	Alerts []CanaryAlert `json:"alerts,omitempty"`

	// Flagger's fields (see compat.go for what serin makes of each).

	// PrimaryReadyThreshold is the percentage of the stable pods (the
	// Deployment's desired replicas, rounded up) that must be ready before
	// a release's traffic moves or its checks run; 100 when not set.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	PrimaryReadyThreshold *int32 `json:"primaryReadyThreshold,omitempty"`
	// CanaryReadyThreshold is the percentage of the canary copy's pods
	// (its desired replicas, rounded up) that must be ready, on its current
	// template, before traffic moves; 100 when not set.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	CanaryReadyThreshold *int32 `json:"canaryReadyThreshold,omitempty"`
}

// SessionAffinity is a cookie that pins a user to a track.
type SessionAffinity struct {
	// CookieName is the cookie's name.
	CookieName string `json:"cookieName"`
	// MaxAge of the cookie in seconds; defaults to 86400.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxAge int32 `json:"maxAge,omitempty"`

	// Flagger's fields (see compat.go for what serin makes of each).

	// PrimaryCookieName is the cookie of the primary track.
	// +optional
	PrimaryCookieName string `json:"primaryCookieName,omitempty"`
	// +optional
	Domain string `json:"domain,omitempty"`
	// +optional
	HTTPOnly bool `json:"httpOnly,omitempty"`
	// +optional
	Partitioned bool `json:"partitioned,omitempty"`
	// +optional
	Path string `json:"path,omitempty"`
	// +optional
	SameSite SameSite `json:"sameSite,omitempty"`
	// +optional
	Secure bool `json:"secure,omitempty"`
}

// CanaryThresholdRange is the range a metric value must stay in.
type CanaryThresholdRange struct {
	// +optional
	Min *float64 `json:"min,omitempty"`
	// +optional
	Max *float64 `json:"max,omitempty"`
}

// CanaryMetric is a metric checked every interval.
type CanaryMetric struct {
	// Name is a built-in metric (request-success-rate, request-duration)
	// or the name of a custom check with a TemplateRef.
	Name string `json:"name"`
	// Interval of the query window, as a duration; defaults to the
	// analysis interval.
	// +optional
	Interval string `json:"interval,omitempty"`
	// ThresholdRange the value must stay in.
	// +optional
	ThresholdRange *CanaryThresholdRange `json:"thresholdRange,omitempty"`
	// TemplateRef names a MetricTemplate.
	// +optional
	TemplateRef *CrossNamespaceObjectReference `json:"templateRef,omitempty"`
	// TemplateVariables are available in the template as
	// {{ variables.NAME }}.
	// +optional
	TemplateVariables map[string]string `json:"templateVariables,omitempty"`

	// Threshold is Flagger's deprecated bound: the minimum of
	// request-success-rate, the maximum of any other metric. It is used
	// when thresholdRange is unset.
	// +optional
	Threshold *float64 `json:"threshold,omitempty"`
	// Query is Flagger's deprecated inline query.
	// +optional
	Query string `json:"query,omitempty"`
}

// HookType says when a webhook is called.
// +kubebuilder:validation:Enum=confirm-rollout;pre-rollout;rollout;confirm-traffic-increase;confirm-promotion;post-rollout;rollback;event
type HookType string

// Hook types, as in Flagger.
const (
	HookConfirmRollout         HookType = "confirm-rollout"
	HookPreRollout             HookType = "pre-rollout"
	HookRollout                HookType = "rollout"
	HookConfirmTrafficIncrease HookType = "confirm-traffic-increase"
	HookConfirmPromotion       HookType = "confirm-promotion"
	HookPostRollout            HookType = "post-rollout"
	HookRollback               HookType = "rollback"
	HookEvent                  HookType = "event"
)

// HookTypes lists every hook type.
var HookTypes = []HookType{HookConfirmRollout, HookPreRollout, HookRollout, HookConfirmTrafficIncrease,
	HookConfirmPromotion, HookPostRollout, HookRollback, HookEvent}

// CanaryWebhook is an HTTP hook.
type CanaryWebhook struct {
	Name string `json:"name"`
	// Type defaults to rollout.
	// +optional
	Type HookType `json:"type,omitempty"`
	// URL is called with a POST of the release's payload.
	URL string `json:"url"`
	// Timeout as a duration; defaults to 10s.
	// +optional
	Timeout string `json:"timeout,omitempty"`
	// Metadata is passed in the payload.
	// +optional
	Metadata map[string]string `json:"metadata,omitempty"`
	// MuteAlert keeps a failing hook out of alerts.
	// +optional
	MuteAlert bool `json:"muteAlert,omitempty"`
	// Retries of a failed call within one check.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Retries int32 `json:"retries,omitempty"`

	// DisableTLS is Flagger's switch for calling the hook without TLS
	// verification.
	// +optional
	DisableTLS bool `json:"disableTLS,omitempty"`
}

// AlertSeverity filters alerts.
// +kubebuilder:validation:Enum=info;warn;error
type AlertSeverity string

// Alert severities.
const (
	SeverityInfo  AlertSeverity = "info"
	SeverityWarn  AlertSeverity = "warn"
	SeverityError AlertSeverity = "error"
)

// CanaryAlert sends notifications of at least Severity to a provider.
type CanaryAlert struct {
	Name string `json:"name"`
	// Severity is the lowest that is sent; defaults to info.
	// +optional
	Severity    AlertSeverity                 `json:"severity,omitempty"`
	ProviderRef CrossNamespaceObjectReference `json:"providerRef"`
}

// ReplicasPolicy says how canary replicas are chosen.
// +kubebuilder:validation:Enum=Proportional;Fixed;Match
type ReplicasPolicy string

// Replica policies.
const (
	// ReplicasProportional follows traffic: ceil(stable × weight / 100),
	// at least Min.
	ReplicasProportional ReplicasPolicy = "Proportional"
	// ReplicasFixed runs Count pods.
	ReplicasFixed ReplicasPolicy = "Fixed"
	// ReplicasMatch runs as many pods as stable.
	ReplicasMatch ReplicasPolicy = "Match"
)

// CanaryReplicas says how many pods the canary copy runs.
type CanaryReplicas struct {
	// Policy defaults to Proportional.
	// +optional
	Policy ReplicasPolicy `json:"policy,omitempty"`
	// Count for the Fixed policy.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Count int32 `json:"count,omitempty"`
	// Min for the Proportional policy; defaults to 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Min int32 `json:"min,omitempty"`
}

// JudgeKind chooses a judge.
// +kubebuilder:validation:Enum=Threshold;Comparative
type JudgeKind string

// Judges.
const (
	// JudgeThreshold is Flagger's: every metric inside its thresholdRange,
	// and `threshold` failed checks roll back.
	JudgeThreshold JudgeKind = "Threshold"
	// JudgeComparative also compares canary with stable over the same
	// window with a sequential test, which can roll back or promote early.
	JudgeComparative JudgeKind = "Comparative"
)

// Judge configures how metric values become a verdict.
type Judge struct {
	// Kind defaults to Threshold.
	// +optional
	Kind JudgeKind `json:"kind,omitempty"`
	// FalseRollbackRate bounds the chance that the comparative judge rolls
	// back a canary that is as good as stable (default "0.01").
	// +optional
	FalseRollbackRate string `json:"falseRollbackRate,omitempty"`
	// Tolerance is the error-rate increase, in percentage points, the
	// comparative judge accepts (default "1").
	// +optional
	Tolerance string `json:"tolerance,omitempty"`
	// LatencyTolerance is the p99 latency increase over stable, in percent
	// of stable's p99, the comparative judge accepts (default "20").
	// +optional
	LatencyTolerance string `json:"latencyTolerance,omitempty"`
	// EarlyPromotion lets the comparative judge skip the remaining steps
	// once the canary is proven as good as stable.
	// +optional
	EarlyPromotion bool `json:"earlyPromotion,omitempty"`
}

// LoadReports makes LRS load reports a source of verdicts.
type LoadReports struct {
	// Enabled asks the data plane for load reports.
	Enabled bool `json:"enabled"`
}

// CanaryPhase is the phase of a release, with Flagger's names.
type CanaryPhase string

// Phases.
const (
	PhaseInitializing     CanaryPhase = "Initializing"
	PhaseInitialized      CanaryPhase = "Initialized"
	PhaseWaiting          CanaryPhase = "Waiting"
	PhaseProgressing      CanaryPhase = "Progressing"
	PhaseWaitingPromotion CanaryPhase = "WaitingPromotion"
	PhasePromoting        CanaryPhase = "Promoting"
	PhaseFinalising       CanaryPhase = "Finalising"
	PhaseSucceeded        CanaryPhase = "Succeeded"
	PhaseFailed           CanaryPhase = "Failed"
	PhaseTerminating      CanaryPhase = "Terminating"
	PhaseTerminated       CanaryPhase = "Terminated"
)

// Condition types.
const (
	// ConditionPromoted is True once the last release was promoted (and
	// False while one runs or after a rollback), as in Flagger.
	ConditionPromoted = "Promoted"
	// ConditionSpecConflict is True while annotations and the Canary set
	// the same field to different values.
	ConditionSpecConflict = "SpecConflict"
	// ConditionTrafficApplied is True when every subscribed proxy has
	// ACKed the weight in status.
	ConditionTrafficApplied = "TrafficApplied"
	// ConditionManualAction says what became of the last serin.dev/action:
	// True when it was acted on, False (reason Refused) when it could not
	// be in the release's phase, with the reason.
	ConditionManualAction = "ManualAction"
	// ConditionHostsOwned is False while spec.service.hosts names hosts
	// the Canary's namespace does not own; those are not served.
	ConditionHostsOwned = "HostsOwned"
	// ConditionCompatible is False (reason IgnoredFields) while the spec
	// sets fields of Flagger's schema that serin accepts and ignores, and
	// lists them; True otherwise.
	ConditionCompatible = "Compatible"
)

// CanaryStatus is all the state of a release.
type CanaryStatus struct {
	// +optional
	Phase CanaryPhase `json:"phase,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// CanaryWeight is the weight serin serves to the data plane. It is
	// written before any proxy is sent it.
	// +optional
	CanaryWeight int32 `json:"canaryWeight"`
	// Mirroring is true while the canary receives mirrored traffic.
	// +optional
	Mirroring bool `json:"mirroring,omitempty"`
	// Matching is true while requests matching analysis.match go to the
	// canary (A/B testing).
	// +optional
	Matching bool `json:"matching,omitempty"`
	// FailedChecks of the current release.
	// +optional
	FailedChecks int32 `json:"failedChecks"`
	// Iterations done in the current release.
	// +optional
	Iterations int32 `json:"iterations"`
	// StableRevision is the pod-template hash the stable pods run.
	// +optional
	StableRevision string `json:"stableRevision,omitempty"`
	// CanaryRevision is the pod-template hash under release.
	// +optional
	CanaryRevision string `json:"canaryRevision,omitempty"`
	// StableConfig is the content revisions of the ConfigMaps and Secrets
	// the stable pods read (the pod-template annotation serin.dev/config
	// of the stable revision): after a rollback they keep reading these
	// snapshots, whatever the objects hold now.
	// +optional
	StableConfig string `json:"stableConfig,omitempty"`
	// TrackedConfig lists the ConfigMaps and Secrets the Deployment's
	// template references that serin tracks, with the content revision
	// each holds now; a change to one starts a release.
	// +optional
	// +listType=atomic
	TrackedConfig []ConfigRevision `json:"trackedConfig,omitempty"`
	// FailedRevisions were rolled back; they are not retried until the
	// template changes or someone asks for a retry.
	// +optional
	FailedRevisions []string `json:"failedRevisions,omitempty"`
	// ReleaseStartTime is when the current release began.
	// +optional
	ReleaseStartTime *metav1.Time `json:"releaseStartTime,omitempty"`
	// AnalysisStartTime is when the pre-rollout hooks passed and the
	// canary began to receive traffic.
	// +optional
	AnalysisStartTime *metav1.Time `json:"analysisStartTime,omitempty"`
	// StepStartTime is when the current weight was applied by the data
	// plane; checks count traffic from then on.
	// +optional
	StepStartTime *metav1.Time `json:"stepStartTime,omitempty"`
	// LastCheckTime is when the last check ran.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`
	// LastFastCheckTime is when the comparative judge last looked between
	// checks.
	// +optional
	LastFastCheckTime *metav1.Time `json:"lastFastCheckTime,omitempty"`
	// NoDataSince is when checks began to see no traffic.
	// +optional
	NoDataSince *metav1.Time `json:"noDataSince,omitempty"`
	// LoadCheckpoint is the release's load-report counts so far, kept for
	// the comparative judge: its counts run from the start of the
	// analysis, and load reports are kept for fifteen minutes only.
	// +optional
	LoadCheckpoint *LoadCheckpoint `json:"loadCheckpoint,omitempty"`
	// LastVerdict is the last check's verdict and its reasons.
	// +optional
	LastVerdict string `json:"lastVerdict,omitempty"`
	// LastHandledAction is the last serin.dev/action annotation handled.
	// +optional
	LastHandledAction string `json:"lastHandledAction,omitempty"`
	// Message says what the release waits for or why it ended.
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// LoadCheckpoint is the load-report counts of a release from Since to
// Through. The comparative judge adds the reports received since Through
// to it, so its counts cover the whole release however long it runs, and
// a restarted serin carries on from it.
type LoadCheckpoint struct {
	// Since is when the counts begin: the start of the release's analysis.
	Since metav1.Time `json:"since"`
	// Through is when they end (exclusive), on a ten-second boundary.
	Through metav1.Time `json:"through"`
	// Canary and Stable are each track's completed requests and errors.
	Canary LoadTrackCounts `json:"canary"`
	Stable LoadTrackCounts `json:"stable"`
}

// LoadTrackCounts are one track's completed requests and the errors among
// them.
type LoadTrackCounts struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
}
