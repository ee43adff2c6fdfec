package v1alpha1

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Defaults.
const (
	DefaultProgressDeadlineSeconds = 600
	DefaultInterval                = "1m"
	DefaultThreshold               = 5
	DefaultStepWeight              = 10
	DefaultMaxWeight               = 50
	DefaultMirrorWeight            = 100
	DefaultCookieMaxAge            = 86400
	DefaultHookTimeout             = "10s"
	DefaultFalseRollbackRate       = "0.01"
	DefaultTolerance               = "1"
	DefaultLatencyTolerance        = "20"
)

// SetDefaults fills in what the spec leaves unset. It is idempotent.
func SetDefaults(s *CanarySpec) {
	if s.TargetRef.Kind == "" {
		s.TargetRef.Kind = "Deployment"
	}
	if s.TargetRef.APIVersion == "" {
		s.TargetRef.APIVersion = "apps/v1"
	}
	if s.ProgressDeadlineSeconds == nil {
		d := int32(DefaultProgressDeadlineSeconds)
		s.ProgressDeadlineSeconds = &d
	}
	if s.Service.Name == "" {
		s.Service.Name = s.TargetRef.Name
	}
	setServiceDefaults(&s.Service)
	if s.Analysis == nil {
		s.Analysis = &CanaryAnalysis{}
	}
	setAnalysisDefaults(s.Analysis)
	setReplicaAndJudgeDefaults(s)
}

func setServiceDefaults(svc *CanaryService) {
	if svc.AppProtocol == "" {
		svc.AppProtocol = "http"
	}
	svc.AppProtocol = AppProtocol(strings.ToLower(string(svc.AppProtocol)))
	if svc.PortName == "" {
		svc.PortName = map[AppProtocol]string{"tcp": "tcp", "grpc": "grpc", "http2": "http2"}[svc.AppProtocol]
		if svc.PortName == "" {
			svc.PortName = "http"
		}
	}
}

func setAnalysisDefaults(a *CanaryAnalysis) {
	if a.Interval == "" {
		a.Interval = DefaultInterval
	}
	if a.Threshold == 0 {
		a.Threshold = DefaultThreshold
	}
	if a.Iterations == 0 && len(a.StepWeights) == 0 {
		if a.StepWeight == 0 {
			a.StepWeight = DefaultStepWeight
		}
		if a.MaxWeight == 0 {
			a.MaxWeight = max(DefaultMaxWeight, a.StepWeight)
		}
	}
	if a.Mirror && a.MirrorWeight == 0 {
		a.MirrorWeight = DefaultMirrorWeight
	}
	if a.SessionAffinity != nil && a.SessionAffinity.MaxAge == 0 {
		a.SessionAffinity.MaxAge = DefaultCookieMaxAge
	}
	for i := range a.Metrics {
		legacyThreshold(&a.Metrics[i])
	}
	for i := range a.Webhooks {
		if a.Webhooks[i].Type == "" {
			a.Webhooks[i].Type = HookRollout
		}
		if a.Webhooks[i].Timeout == "" {
			a.Webhooks[i].Timeout = DefaultHookTimeout
		}
	}
	for i := range a.Alerts {
		if a.Alerts[i].Severity == "" {
			a.Alerts[i].Severity = SeverityInfo
		}
	}
}

func setReplicaAndJudgeDefaults(s *CanarySpec) {
	if s.CanaryReplicas == nil {
		s.CanaryReplicas = &CanaryReplicas{}
	}
	if s.CanaryReplicas.Policy == "" {
		s.CanaryReplicas.Policy = ReplicasProportional
	}
	if s.CanaryReplicas.Policy == ReplicasProportional && s.CanaryReplicas.Min == 0 {
		s.CanaryReplicas.Min = 1
	}
	if s.Judge == nil {
		s.Judge = &Judge{}
	}
	if s.Judge.Kind == "" {
		s.Judge.Kind = JudgeThreshold
	}
	if s.Judge.FalseRollbackRate == "" {
		s.Judge.FalseRollbackRate = DefaultFalseRollbackRate
	}
	if s.Judge.Tolerance == "" {
		s.Judge.Tolerance = DefaultTolerance
	}
	if s.Judge.LatencyTolerance == "" {
		s.Judge.LatencyTolerance = DefaultLatencyTolerance
	}
}

// Strategy is the kind of release a spec describes.
type Strategy string

// Strategies.
const (
	// StrategyCanary shifts weight in steps (stepWeight/maxWeight or stepWeights).
	StrategyCanary Strategy = "Canary"
	// StrategyBlueGreen keeps all traffic on stable for `iterations` checks
	// (with mirroring if enabled), then switches.
	StrategyBlueGreen Strategy = "BlueGreen"
	// StrategyABTesting sends matching requests to the canary for
	// `iterations` checks.
	StrategyABTesting Strategy = "ABTesting"
)

// Strategy tells the release strategy of a defaulted spec.
func (s *CanarySpec) Strategy() Strategy {
	a := s.Analysis
	switch {
	case a == nil:
		return StrategyCanary
	case a.Iterations > 0 && len(a.Match) > 0:
		return StrategyABTesting
	case a.Iterations > 0 && a.StepWeight == 0 && len(a.StepWeights) == 0:
		return StrategyBlueGreen
	default:
		return StrategyCanary
	}
}

// IntervalDuration is the analysis interval of a defaulted spec.
func (s *CanarySpec) IntervalDuration() time.Duration {
	if s.Analysis == nil {
		return time.Minute
	}
	d, err := time.ParseDuration(s.Analysis.Interval)
	if err != nil || d <= 0 {
		return time.Minute
	}
	return d
}

// ProgressDeadline is the progress deadline of a defaulted spec.
func (s *CanarySpec) ProgressDeadline() time.Duration {
	if s.ProgressDeadlineSeconds == nil {
		return DefaultProgressDeadlineSeconds * time.Second
	}
	return time.Duration(*s.ProgressDeadlineSeconds) * time.Second
}

// DefaultReadyThreshold is the percentage of ready pods a track needs
// when analysis.canaryReadyThreshold or primaryReadyThreshold is not set.
const DefaultReadyThreshold = 100

// ReadyThresholds are the percentages of ready pods the canary and the
// stable track need before traffic moves (DefaultReadyThreshold unless
// set).
func (s *CanarySpec) ReadyThresholds() (canary, primary int32) {
	canary, primary = DefaultReadyThreshold, DefaultReadyThreshold
	if a := s.Analysis; a != nil {
		if a.CanaryReadyThreshold != nil {
			canary = *a.CanaryReadyThreshold
		}
		if a.PrimaryReadyThreshold != nil {
			primary = *a.PrimaryReadyThreshold
		}
	}
	return canary, primary
}

// ReadyPodsNeeded is how many of desired pods must be ready to meet a
// threshold in percent: the percentage of desired, rounded up.
func ReadyPodsNeeded(desired, threshold int32) int32 {
	if desired <= 0 || threshold <= 0 {
		return 0
	}
	threshold = min(threshold, 100)
	return int32((int64(desired)*int64(threshold) + 99) / 100)
}

// Weights are the canary weights of a weighted release, in order.
func (s *CanarySpec) Weights() []int32 {
	a := s.Analysis
	if a == nil {
		return nil
	}
	if len(a.StepWeights) > 0 {
		return a.StepWeights
	}
	if a.StepWeight <= 0 {
		return nil
	}
	var out []int32
	for w := a.StepWeight; w < a.MaxWeight; w += a.StepWeight {
		out = append(out, w)
	}
	return append(out, a.MaxWeight)
}

// Conflict is a field that annotations and an explicit Canary both set,
// to different values; the Canary wins.
type Conflict struct {
	Field      string
	Annotation string
	Canary     string
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s: annotation says %s, Canary says %s (the Canary wins)", c.Field, c.Annotation, c.Canary)
}

// Effective merges defaults ← annotations ← an explicit Canary spec: every
// field the explicit spec sets wins, and where the annotations set the same
// field differently a Conflict is reported. explicit may be nil
// (annotation-only workloads); fromAnnotations may be nil (no opt-in
// annotation). The result is defaulted.
func Effective(fromAnnotations, explicit *CanarySpec) (CanarySpec, []Conflict) {
	var out CanarySpec
	switch {
	case explicit == nil && fromAnnotations == nil:
	case explicit == nil:
		fromAnnotations.DeepCopyInto(&out)
		if out.Analysis == nil || len(out.Analysis.Metrics) == 0 {
			if out.Analysis == nil {
				out.Analysis = &CanaryAnalysis{}
			}
			out.Analysis.Metrics = DefaultMetrics()
		}
	case fromAnnotations == nil:
		explicit.DeepCopyInto(&out)
	default:
		fromAnnotations.DeepCopyInto(&out)
		var conflicts []Conflict
		mergeInto(reflect.ValueOf(&out).Elem(), reflect.ValueOf(explicit.DeepCopy()).Elem(), "spec", &conflicts)
		SetDefaults(&out)
		return out, conflicts
	}
	SetDefaults(&out)
	return out, nil
}

// mergeInto overwrites dst with every non-zero field of src, recursing into
// structs and pointers to structs; slices, maps and scalars are replaced
// whole. A replaced non-zero value that differs is a conflict.
func mergeInto(dst, src reflect.Value, path string, conflicts *[]Conflict) {
	switch src.Kind() {
	case reflect.Struct:
		t := src.Type()
		for i := range src.NumField() {
			name := t.Field(i).Name
			if tag := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]; tag != "" {
				name = tag
			}
			mergeInto(dst.Field(i), src.Field(i), path+"."+name, conflicts)
		}
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		if src.Elem().Kind() == reflect.Struct && !dst.IsNil() {
			mergeInto(dst.Elem(), src.Elem(), path, conflicts)
			return
		}
		fallthrough
	default:
		if src.IsZero() {
			return
		}
		if !dst.IsZero() && !reflect.DeepEqual(dst.Interface(), src.Interface()) {
			*conflicts = append(*conflicts, Conflict{Field: path, Annotation: show(dst), Canary: show(src)})
		}
		dst.Set(src)
	}
}

func show(v reflect.Value) string {
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	return fmt.Sprintf("%v", v.Interface())
}

// legacyThreshold turns Flagger's deprecated metrics[].threshold into the
// thresholdRange it stands for: the minimum of request-success-rate, the
// maximum of every other metric. An explicit thresholdRange wins.
func legacyThreshold(m *CanaryMetric) {
	if m.Threshold == nil || m.ThresholdRange != nil {
		return
	}
	t := *m.Threshold
	if m.Name == MetricRequestSuccessRate {
		m.ThresholdRange = &CanaryThresholdRange{Min: &t}
		return
	}
	m.ThresholdRange = &CanaryThresholdRange{Max: &t}
}
