package v1alpha1

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Annotations on a Deployment. AnnotationCanary opts it in; the others are
// the common knobs, so that most workloads never need a Canary object.
const (
	// AnnotationCanary: "enabled" makes the Deployment managed.
	AnnotationCanary = "serin.dev/canary"
	// AnnotationStepWeight: canary weight added per step, 1-100.
	AnnotationStepWeight = "serin.dev/step-weight"
	// AnnotationMaxWeight: highest canary weight before promotion, 1-100.
	AnnotationMaxWeight = "serin.dev/max-weight"
	// AnnotationStepWeights: comma-separated ascending weights, e.g. "5,10,25,50".
	AnnotationStepWeights = "serin.dev/step-weights"
	// AnnotationIterations: checks of a blue/green release (no weights).
	AnnotationIterations = "serin.dev/iterations"
	// AnnotationInterval: time between steps, a duration ("1m").
	AnnotationInterval = "serin.dev/interval"
	// AnnotationThreshold: failed checks before rollback.
	AnnotationThreshold = "serin.dev/threshold"
	// AnnotationSuccessRate: lowest request success rate, percent (e.g. "99").
	AnnotationSuccessRate = "serin.dev/success-rate"
	// AnnotationLatencyP99: highest p99 latency, a duration ("500ms") or milliseconds ("500").
	AnnotationLatencyP99 = "serin.dev/latency-p99"
	// AnnotationService: the service name (defaults to the Deployment's name).
	AnnotationService = "serin.dev/service"
	// AnnotationPort: the service port (defaults to the first container port).
	AnnotationPort = "serin.dev/port"
	// AnnotationProtocol: http, http2, grpc or tcp.
	AnnotationProtocol = "serin.dev/protocol"
	// AnnotationMirror: mirror this percent (1-100) of traffic to the canary
	// before shifting weight.
	AnnotationMirror = "serin.dev/mirror"
	// AnnotationSessionCookie: keep users on their track with this cookie;
	// "name" or "name;maxAge=1h".
	AnnotationSessionCookie = "serin.dev/session-cookie"
)

// Annotations serin writes.
const (
	// AnnotationCandidateRevision (Deployment): the pod-template hash held
	// for release.
	AnnotationCandidateRevision = "serin.dev/candidate-revision"
	// AnnotationStableRevision (Deployment): the pod-template hash the
	// stable pods run.
	AnnotationStableRevision = "serin.dev/stable-revision"
	// AnnotationOptedInBy (Deployment): the Canary that opted the
	// Deployment in; serin removes its opt-in when that Canary goes.
	AnnotationOptedInBy = "serin.dev/opted-in-by"
	// AnnotationRevision (canary copy): the candidate revision it runs.
	AnnotationRevision = "serin.dev/revision"
	// AnnotationSource (Canary): "annotations" when serin created the
	// Canary from the Deployment's annotations and owns its spec.
	AnnotationSource = "serin.dev/source"
	// AnnotationAction (Canary): a manual action, "<verb>/<nonce>" with verb
	// promote, abort or retry; the CLI sets it.
	AnnotationAction = "serin.dev/action"
	// AnnotationPaused (Canary): "true" pauses the release (serin pause).
	AnnotationPaused = "serin.dev/paused"

	// SourceAnnotations is the value of AnnotationSource for Canaries made
	// from a Deployment's annotations.
	SourceAnnotations = "annotations"
	// LabelManagedBy marks objects serin made.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value on serin's objects.
	ManagedByValue = "serin"
	// LabelTrack is the track label on canary pods.
	LabelTrack = "serin.dev/track"
)

// Manual actions the CLI requests through AnnotationAction.
const (
	ActionPromote = "promote"
	ActionAbort   = "abort"
	ActionRetry   = "retry"
)

// userAnnotations are the knobs a user may set, in documentation order.
var userAnnotations = []string{
	AnnotationCanary, AnnotationStepWeight, AnnotationMaxWeight, AnnotationStepWeights,
	AnnotationIterations, AnnotationInterval, AnnotationThreshold, AnnotationSuccessRate,
	AnnotationLatencyP99, AnnotationService, AnnotationPort, AnnotationProtocol,
	AnnotationMirror, AnnotationSessionCookie,
}

// serinWritten are annotations only serin sets on Deployments.
var serinWritten = []string{AnnotationCandidateRevision, AnnotationStableRevision, AnnotationOptedInBy, AnnotationRevision}

// Managed reports whether a Deployment with these annotations opted in.
func Managed(annotations map[string]string) bool {
	return annotations[AnnotationCanary] == "enabled"
}

// Built-in metric names.
const (
	MetricRequestSuccessRate = "request-success-rate"
	MetricRequestDuration    = "request-duration"
)

func annPath(key string) *field.Path {
	return field.NewPath("metadata", "annotations").Key(key)
}

// SpecFromAnnotations turns a managed Deployment's annotations into the
// Canary spec they stand for (before defaults). Errors name the annotation,
// the value and what is allowed.
func SpecFromAnnotations(name string, ann map[string]string) (*CanarySpec, field.ErrorList) {
	p := annotationParser{ann: ann}
	spec := &CanarySpec{TargetRef: LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name}}
	a := &CanaryAnalysis{}
	spec.Analysis = a
	if v, ok := ann[AnnotationCanary]; ok && v != "enabled" && v != "disabled" {
		p.errs = append(p.errs, field.NotSupported(annPath(AnnotationCanary), v, []string{"enabled", "disabled"}))
	}
	p.intIn(AnnotationStepWeight, 1, 100, &a.StepWeight)
	p.intIn(AnnotationMaxWeight, 1, 100, &a.MaxWeight)
	p.intIn(AnnotationIterations, 1, 10000, &a.Iterations)
	p.intIn(AnnotationThreshold, 1, 1000, &a.Threshold)
	p.intIn(AnnotationPort, 1, 65535, &spec.Service.Port)
	p.stepWeights(a)
	p.service(&spec.Service)
	p.traffic(a)
	p.metrics(a)
	p.unknown()
	return spec, p.errs
}

// annotationParser reads annotations into a spec and collects what is
// wrong with them.
type annotationParser struct {
	ann  map[string]string
	errs field.ErrorList
}

func (p *annotationParser) invalid(key, v, msg string) {
	p.errs = append(p.errs, field.Invalid(annPath(key), v, msg))
}

func (p *annotationParser) intIn(key string, lo, hi int, dst *int32) {
	v, ok := p.ann[key]
	if !ok {
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		p.invalid(key, v, fmt.Sprintf("must be an integer from %d to %d", lo, hi))
		return
	}
	*dst = int32(n)
}

func (p *annotationParser) stepWeights(a *CanaryAnalysis) {
	v, ok := p.ann[AnnotationStepWeights]
	if !ok {
		return
	}
	for _, part := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 || n > 100 {
			p.invalid(AnnotationStepWeights, v, "must be a comma-separated list of ascending integers from 1 to 100, e.g. \"5,10,25,50\"")
			a.StepWeights = nil
			return
		}
		a.StepWeights = append(a.StepWeights, int32(n))
	}
}

// service reads the interval-free service annotations: name and protocol.
func (p *annotationParser) service(svc *CanaryService) {
	if v, ok := p.ann[AnnotationService]; ok {
		svc.Name = v
	}
	if v, ok := p.ann[AnnotationProtocol]; ok {
		proto := AppProtocol(strings.ToLower(v))
		if !slices.Contains([]AppProtocol{"http", "http2", "grpc", "tcp"}, proto) {
			p.errs = append(p.errs, field.NotSupported(annPath(AnnotationProtocol), v, []string{"http", "http2", "grpc", "tcp"}))
		} else {
			svc.AppProtocol = proto
		}
	}
}

// traffic reads the interval, mirroring and sticky-session annotations.
func (p *annotationParser) traffic(a *CanaryAnalysis) {
	if v, ok := p.ann[AnnotationInterval]; ok {
		if err := positiveDuration(v); err != nil {
			p.invalid(AnnotationInterval, v, err.Error())
		} else {
			a.Interval = v
		}
	}
	if v, ok := p.ann[AnnotationMirror]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > 100 {
			p.invalid(AnnotationMirror, v, "must be the mirrored percent, an integer from 1 to 100")
		} else {
			a.Mirror, a.MirrorWeight = true, int32(n)
		}
	}
	if v, ok := p.ann[AnnotationSessionCookie]; ok {
		sa, err := parseSessionCookie(v)
		if err != nil {
			p.invalid(AnnotationSessionCookie, v, err.Error())
		} else {
			a.SessionAffinity = sa
		}
	}
}

// metrics reads the metric annotations, which set both built-in checks;
// without them, annotation-only workloads get DefaultMetrics.
func (p *annotationParser) metrics(a *CanaryAnalysis) {
	minRate, maxMs := DefaultMinSuccessRate, DefaultMaxDurationMs
	v, hasRate := p.ann[AnnotationSuccessRate]
	if hasRate {
		f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), "%"), 64)
		if err != nil || f < 0 || f > 100 {
			p.invalid(AnnotationSuccessRate, v, "must be a percentage from 0 to 100, e.g. \"99\" or \"99.5\"")
		} else {
			minRate = f
		}
	}
	v, hasLatency := p.ann[AnnotationLatencyP99]
	if hasLatency {
		ms, err := parseMillis(v)
		if err != nil {
			p.invalid(AnnotationLatencyP99, v, err.Error())
		} else {
			maxMs = ms
		}
	}
	if hasRate || hasLatency {
		a.Metrics = builtinMetrics(minRate, maxMs)
	}
}

// unknown reports serin.dev/ annotations that serin neither reads nor
// writes (a typo would otherwise be silently ignored).
func (p *annotationParser) unknown() {
	for _, k := range slices.Sorted(maps.Keys(p.ann)) {
		if strings.HasPrefix(k, "serin.dev/") && !slices.Contains(userAnnotations, k) && !slices.Contains(serinWritten, k) {
			p.errs = append(p.errs, field.NotSupported(field.NewPath("metadata", "annotations"), k, userAnnotations))
		}
	}
}

func parseSessionCookie(v string) (*SessionAffinity, error) {
	name, rest, hasOpts := strings.Cut(v, ";")
	name = strings.TrimSpace(name)
	sa := &SessionAffinity{CookieName: name}
	if !ValidCookieName(name) {
		return nil, fmt.Errorf("cookie name %q is not a valid cookie token; use \"name\" or \"name;maxAge=1h\"", name)
	}
	if hasOpts {
		k, val, _ := strings.Cut(strings.TrimSpace(rest), "=")
		if k != "maxAge" {
			return nil, fmt.Errorf("unknown option %q; the only option is maxAge, e.g. \"name;maxAge=1h\"", k)
		}
		d, err := time.ParseDuration(val)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("maxAge %q must be a positive duration, e.g. \"1h\"", val)
		}
		sa.MaxAge = int32(d / time.Second)
	}
	return sa, nil
}

func parseMillis(v string) (float64, error) {
	v = strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f <= 0 {
			return 0, fmt.Errorf("must be positive")
		}
		return f, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("must be a positive duration (\"500ms\") or milliseconds (\"500\")")
	}
	return float64(d) / float64(time.Millisecond), nil
}

func positiveDuration(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("must be a duration such as \"30s\" or \"1m\"")
	}
	if d <= 0 {
		return fmt.Errorf("must be positive")
	}
	return nil
}

// Defaults of the built-in checks.
const (
	DefaultMinSuccessRate = 99.0
	DefaultMaxDurationMs  = 500.0
)

// DefaultMetrics are the checks of a workload that names none:
// request-success-rate ≥ 99 % and request-duration p99 ≤ 500 ms.
func DefaultMetrics() []CanaryMetric {
	return builtinMetrics(DefaultMinSuccessRate, DefaultMaxDurationMs)
}

func builtinMetrics(minRate, maxMs float64) []CanaryMetric {
	return []CanaryMetric{
		{Name: MetricRequestSuccessRate, ThresholdRange: &CanaryThresholdRange{Min: &minRate}},
		{Name: MetricRequestDuration, ThresholdRange: &CanaryThresholdRange{Max: &maxMs}},
	}
}
