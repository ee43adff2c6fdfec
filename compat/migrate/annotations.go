package migrate

import (
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// AsAnnotations returns the Deployment annotations that stand for spec,
// and true, when they express it completely: serin resolves the
// annotations of Deployment name to the very spec it resolves from a
// Canary with this spec. Otherwise it returns false and a Canary is
// needed. The Canary must be named after its Deployment, because serin
// names the Canary it makes from annotations after the Deployment.
func AsAnnotations(canaryName string, spec *v1alpha1.CanarySpec) (map[string]string, bool) {
	name := spec.TargetRef.Name
	if name == "" {
		name = canaryName
	}
	if name != canaryName || (spec.TargetRef.Kind != "" && spec.TargetRef.Kind != "Deployment") {
		return nil, false
	}
	ann := annotationsFor(name, spec)
	fromAnn, errs := v1alpha1.SpecFromAnnotations(name, ann)
	if len(errs) > 0 {
		return nil, false
	}
	explicit := spec.DeepCopy()
	// istio and kubernetes route through serin's xDS server as no
	// provider does, so they need no annotation; the other routers do.
	if p := explicit.Provider; p == v1alpha1.ProviderIstio || p == v1alpha1.ProviderKubernetes {
		explicit.Provider = ""
	}
	if !equality.Semantic.DeepEqual(resolved(name, fromAnn, nil), resolved(name, nil, explicit)) {
		return nil, false
	}
	return ann, true
}

// resolved is the effective spec serin runs for a Canary named name:
// from annotations when explicit is nil, else from explicit.
func resolved(name string, fromAnn, explicit *v1alpha1.CanarySpec) v1alpha1.CanarySpec {
	c := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if explicit == nil {
		c.Annotations = map[string]string{v1alpha1.AnnotationSource: v1alpha1.SourceAnnotations}
	} else {
		c.Spec = *explicit
	}
	spec, _ := v1alpha1.ResolveSpecFrom(c, nil, fromAnn)
	return spec
}

// annotationsFor writes every knob of spec that an annotation has; what
// it cannot write makes the comparison in AsAnnotations fail.
func annotationsFor(name string, spec *v1alpha1.CanarySpec) map[string]string {
	ann := map[string]string{v1alpha1.AnnotationCanary: "enabled"}
	set := func(key string, n int32) {
		if n != 0 {
			ann[key] = strconv.Itoa(int(n))
		}
	}
	svc := spec.Service
	if svc.Name != "" && svc.Name != name {
		ann[v1alpha1.AnnotationService] = svc.Name
	}
	set(v1alpha1.AnnotationPort, svc.Port)
	if svc.AppProtocol != "" {
		ann[v1alpha1.AnnotationProtocol] = string(svc.AppProtocol)
	}
	a := spec.Analysis
	if a == nil {
		return ann
	}
	set(v1alpha1.AnnotationStepWeight, a.StepWeight)
	set(v1alpha1.AnnotationMaxWeight, a.MaxWeight)
	set(v1alpha1.AnnotationIterations, a.Iterations)
	set(v1alpha1.AnnotationThreshold, a.Threshold)
	if len(a.StepWeights) > 0 {
		parts := make([]string, len(a.StepWeights))
		for i, w := range a.StepWeights {
			parts[i] = strconv.Itoa(int(w))
		}
		ann[v1alpha1.AnnotationStepWeights] = strings.Join(parts, ",")
	}
	if a.Interval != "" {
		ann[v1alpha1.AnnotationInterval] = a.Interval
	}
	if a.Mirror {
		w := a.MirrorWeight
		if w == 0 {
			w = v1alpha1.DefaultMirrorWeight
		}
		set(v1alpha1.AnnotationMirror, w)
	}
	if sa := a.SessionAffinity; sa != nil {
		v := sa.CookieName
		if sa.MaxAge > 0 {
			v += ";maxAge=" + (time.Duration(sa.MaxAge) * time.Second).String()
		}
		ann[v1alpha1.AnnotationSessionCookie] = v
	}
	metricAnnotations(a.Metrics, ann)
	return ann
}

// metricAnnotations writes the two built-in checks, when they are what
// metrics holds.
func metricAnnotations(metrics []v1alpha1.CanaryMetric, ann map[string]string) {
	for _, m := range metrics {
		r := m.ThresholdRange
		switch {
		case r == nil:
		case m.Name == v1alpha1.MetricRequestSuccessRate && r.Min != nil:
			ann[v1alpha1.AnnotationSuccessRate] = strconv.FormatFloat(*r.Min, 'f', -1, 64)
		case m.Name == v1alpha1.MetricRequestDuration && r.Max != nil:
			ann[v1alpha1.AnnotationLatencyP99] = strconv.FormatFloat(*r.Max, 'f', -1, 64)
		}
	}
}
