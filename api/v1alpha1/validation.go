package v1alpha1

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/serin-dev/serin/api/querytemplate"
)

// ValidateCanary checks a Canary as written by its author (before
// defaults): every error names the field, the value and what is allowed.
func ValidateCanary(c *Canary) field.ErrorList {
	return ValidateCanarySpec(&c.Spec, field.NewPath("spec"))
}

// ValidateCanarySpec checks a spec; zero values mean "unset".
func ValidateCanarySpec(s *CanarySpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	tr := p.Child("targetRef")
	if s.TargetRef.Name == "" {
		errs = append(errs, field.Required(tr.Child("name"), "the Deployment to release"))
	}
	if s.TargetRef.Kind != "" && s.TargetRef.Kind != "Deployment" {
		errs = append(errs, field.NotSupported(tr.Child("kind"), s.TargetRef.Kind, []string{"Deployment"}))
	}
	if s.TargetRef.APIVersion != "" && s.TargetRef.APIVersion != "apps/v1" {
		errs = append(errs, field.NotSupported(tr.Child("apiVersion"), s.TargetRef.APIVersion, []string{"apps/v1"}))
	}
	if s.AutoscalerRef != nil {
		ar := p.Child("autoscalerRef")
		if s.AutoscalerRef.Name == "" {
			errs = append(errs, field.Required(ar.Child("name"), "the HorizontalPodAutoscaler or KEDA ScaledObject to copy"))
		}
		if k := s.AutoscalerRef.Kind; k != "" && k != "HorizontalPodAutoscaler" && k != "ScaledObject" {
			errs = append(errs, field.NotSupported(ar.Child("kind"), k, []string{"HorizontalPodAutoscaler", "ScaledObject"}))
		}
	}
	if d := s.ProgressDeadlineSeconds; d != nil && *d < 1 {
		errs = append(errs, field.Invalid(p.Child("progressDeadlineSeconds"), *d, "must be at least 1"))
	}
	errs = append(errs, validateService(&s.Service, p.Child("service"))...)
	errs = append(errs, validateServiceMetadata(&s.Service, p.Child("service"))...)
	if s.Analysis != nil {
		errs = append(errs, validateAnalysis(s.Analysis, &s.Service, p.Child("analysis"))...)
	}
	if s.MetricsServer != "" {
		if err := httpURL(s.MetricsServer); err != nil {
			// The value is not echoed: it may carry credentials.
			errs = append(errs, field.Invalid(p.Child("metricsServer"), field.OmitValueType{}, err.Error()))
		}
	}
	if r := s.CanaryReplicas; r != nil {
		rp := p.Child("canaryReplicas")
		if r.Policy != "" && !slices.Contains([]ReplicasPolicy{ReplicasProportional, ReplicasFixed, ReplicasMatch}, r.Policy) {
			errs = append(errs, field.NotSupported(rp.Child("policy"), r.Policy, []ReplicasPolicy{ReplicasProportional, ReplicasFixed, ReplicasMatch}))
		}
		if r.Policy == ReplicasFixed && r.Count < 1 {
			errs = append(errs, field.Invalid(rp.Child("count"), r.Count, "the Fixed policy needs a count of at least 1"))
		}
		if r.Count < 0 || r.Min < 0 {
			errs = append(errs, field.Invalid(rp, fmt.Sprintf("count=%d min=%d", r.Count, r.Min), "must not be negative"))
		}
	}
	if j := s.Judge; j != nil {
		jp := p.Child("judge")
		if j.Kind != "" && j.Kind != JudgeThreshold && j.Kind != JudgeComparative {
			errs = append(errs, field.NotSupported(jp.Child("kind"), j.Kind, []JudgeKind{JudgeThreshold, JudgeComparative}))
		}
		if j.FalseRollbackRate != "" {
			if f, err := strconv.ParseFloat(j.FalseRollbackRate, 64); err != nil || f <= 0 || f >= 0.5 {
				errs = append(errs, field.Invalid(jp.Child("falseRollbackRate"), j.FalseRollbackRate, "must be a probability above 0 and below 0.5, e.g. \"0.01\""))
			}
		}
		if j.LatencyTolerance != "" {
			if f, err := strconv.ParseFloat(j.LatencyTolerance, 64); err != nil || f < 0 {
				errs = append(errs, field.Invalid(jp.Child("latencyTolerance"), j.LatencyTolerance, "must be a percentage of stable's p99, 0 or more, e.g. \"20\""))
			}
		}
		if j.Tolerance != "" {
			if f, err := strconv.ParseFloat(j.Tolerance, 64); err != nil || f < 0 || f > 100 {
				errs = append(errs, field.Invalid(jp.Child("tolerance"), j.Tolerance, "must be percentage points from 0 to 100, e.g. \"1\""))
			}
		}
	}
	return errs
}

var appProtocols = []AppProtocol{"http", "http2", "grpc", "tcp"}

func validateService(s *CanaryService, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Name != "" {
		for _, msg := range validation.IsDNS1035Label(s.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), s.Name, msg))
		}
	}
	if s.Port < 0 || s.Port > 65535 {
		errs = append(errs, field.Invalid(p.Child("port"), s.Port, "must be from 1 to 65535"))
	}
	if s.TargetPort.IntVal < 0 || s.TargetPort.IntVal > 65535 {
		errs = append(errs, field.Invalid(p.Child("targetPort"), s.TargetPort.IntVal, "must be from 1 to 65535 or a port name"))
	}
	proto := AppProtocol(strings.ToLower(string(s.AppProtocol)))
	if s.AppProtocol != "" && !slices.Contains(appProtocols, proto) {
		errs = append(errs, field.NotSupported(p.Child("appProtocol"), s.AppProtocol, appProtocols))
	}
	for i, h := range s.Hosts {
		host := strings.TrimPrefix(h, "*.")
		if msgs := validation.IsDNS1123Subdomain(host); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p.Child("hosts").Index(i), h, strings.Join(msgs, "; ")))
		}
	}
	for i, g := range s.Gateways {
		ns, name, found := strings.Cut(g, "/")
		if !found {
			name, ns = ns, ""
		}
		bad := len(validation.IsDNS1123Subdomain(name)) > 0 || (found && len(validation.IsDNS1123Label(ns)) > 0)
		if bad {
			errs = append(errs, field.Invalid(p.Child("gateways").Index(i), g, "must be a gateway name or namespace/name"))
		}
	}
	for i := range s.Match {
		errs = append(errs, validateMatch(&s.Match[i], p.Child("match").Index(i))...)
	}
	if s.Timeout != "" {
		errs = append(errs, durationField(p.Child("timeout"), s.Timeout)...)
	}
	if r := s.Retries; r != nil {
		if r.Attempts < 0 {
			errs = append(errs, field.Invalid(p.Child("retries", "attempts"), r.Attempts, "must not be negative"))
		}
		if r.PerTryTimeout != "" {
			errs = append(errs, durationField(p.Child("retries", "perTryTimeout"), r.PerTryTimeout)...)
		}
	}
	if s.Rewrite != nil && s.Rewrite.URI != "" && !strings.HasPrefix(s.Rewrite.URI, "/") {
		errs = append(errs, field.Invalid(p.Child("rewrite", "uri"), s.Rewrite.URI, "must start with /"))
	}
	if h := s.Headers; h != nil {
		for which, ops := range map[string]*HeaderOperations{"request": h.Request, "response": h.Response} {
			if ops == nil {
				continue
			}
			for _, m := range []map[string]string{ops.Set, ops.Add} {
				for k := range m {
					if msgs := validation.IsHTTPHeaderName(k); len(msgs) > 0 {
						errs = append(errs, field.Invalid(p.Child("headers", which), k, "not a valid header name"))
					}
				}
			}
		}
	}
	if tp := s.TrafficPolicy; tp != nil && tp.TLS != nil && tp.TLS.Mode != TLSDisable && tp.TLS.Mode != TLSIstioMutual {
		errs = append(errs, field.NotSupported(p.Child("trafficPolicy", "tls", "mode"), tp.TLS.Mode, []TLSMode{TLSDisable, TLSIstioMutual}))
	}
	errs = append(errs, validateRouting(s, p)...)
	if proto == "tcp" {
		for name, set := range map[string]bool{"match": len(s.Match) > 0, "rewrite": s.Rewrite != nil, "retries": s.Retries != nil, "headers": s.Headers != nil, "timeout": s.Timeout != ""} {
			if set {
				errs = append(errs, field.Forbidden(p.Child(name), "TCP services support weights only"))
			}
		}
	}
	return sortErrors(errs)
}

// validateServiceMetadata checks what goes into the Services serin makes:
// their names (<name>-canary and <name>-primary must be DNS labels too) and
// the labels and annotations of service.apex, service.canary and
// service.primary.
func validateServiceMetadata(s *CanaryService, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Name != "" && len(PrimaryServiceName(s.Name)) > validation.DNS1035LabelMaxLength {
		errs = append(errs, field.TooLong(p.Child("name"), s.Name, validation.DNS1035LabelMaxLength-len(PrimarySuffix)))
	}
	for name, m := range map[string]*CustomMetadata{"apex": s.Apex, "canary": s.Canary, "primary": s.Primary} {
		if m == nil {
			continue
		}
		errs = append(errs, metavalidation.ValidateLabels(m.Labels, p.Child(name, "labels"))...)
		errs = append(errs, apivalidation.ValidateAnnotations(m.Annotations, p.Child(name, "annotations"))...)
	}
	return sortErrors(errs)
}

func validateAnalysis(a *CanaryAnalysis, svc *CanaryService, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateSteps(a, p)...)
	errs = append(errs, validateFeatures(a, svc, p)...)
	errs = append(errs, validateMetrics(a.Metrics, p.Child("metrics"))...)
	errs = append(errs, validateWebhooks(a.Webhooks, p.Child("webhooks"))...)
	errs = append(errs, validateAlerts(a.Alerts, p.Child("alerts"))...)
	return sortErrors(errs)
}

// validateSteps checks the interval, threshold and the weights of the steps.
func validateSteps(a *CanaryAnalysis, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if a.Interval != "" {
		errs = append(errs, durationField(p.Child("interval"), a.Interval)...)
	}
	if a.Threshold < 0 {
		errs = append(errs, field.Invalid(p.Child("threshold"), a.Threshold, "must be at least 1"))
	}
	for name, v := range map[string]int32{"stepWeight": a.StepWeight, "maxWeight": a.MaxWeight, "mirrorWeight": a.MirrorWeight, "stepWeightPromotion": a.StepWeightPromotion} {
		if v < 0 || v > 100 {
			errs = append(errs, field.Invalid(p.Child(name), v, "must be a weight from 1 to 100"))
		}
	}
	if a.StepWeight > 0 && a.MaxWeight > 0 && a.MaxWeight < a.StepWeight {
		errs = append(errs, field.Invalid(p.Child("maxWeight"), a.MaxWeight, fmt.Sprintf("must be at least stepWeight (%d)", a.StepWeight)))
	}
	if len(a.StepWeights) > 0 {
		if a.StepWeight > 0 {
			errs = append(errs, field.Forbidden(p.Child("stepWeight"), "set either stepWeight (with maxWeight) or stepWeights, not both"))
		}
		for i, w := range a.StepWeights {
			if w < 1 || w > 100 {
				errs = append(errs, field.Invalid(p.Child("stepWeights").Index(i), w, "must be a weight from 1 to 100"))
			} else if i > 0 && w <= a.StepWeights[i-1] {
				errs = append(errs, field.Invalid(p.Child("stepWeights").Index(i), w, fmt.Sprintf("must be greater than the step before (%d): weights ascend", a.StepWeights[i-1])))
			}
		}
		if last := a.StepWeights[len(a.StepWeights)-1]; a.MaxWeight > 0 && last > a.MaxWeight {
			errs = append(errs, field.Invalid(p.Child("maxWeight"), a.MaxWeight, fmt.Sprintf("must be at least the last of stepWeights (%d)", last)))
		}
	}
	if a.Iterations < 0 {
		errs = append(errs, field.Invalid(p.Child("iterations"), a.Iterations, "must not be negative"))
	}
	return errs
}

// validateFeatures checks A/B matches, session affinity and what TCP
// services support.
func validateFeatures(a *CanaryAnalysis, svc *CanaryService, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	weighted := a.StepWeight > 0 || len(a.StepWeights) > 0
	if len(a.Match) > 0 {
		if a.Iterations == 0 {
			errs = append(errs, field.Required(p.Child("iterations"), "A/B testing (analysis.match) runs for a number of iterations"))
		}
		if weighted {
			errs = append(errs, field.Forbidden(p.Child("match"), "A/B testing (match) and weighted steps cannot be combined"))
		}
		if a.Mirror {
			errs = append(errs, field.Forbidden(p.Child("mirror"), "mirroring and A/B testing (match) cannot be combined"))
		}
	}
	for i := range a.Match {
		errs = append(errs, validateMatch(&a.Match[i], p.Child("match").Index(i))...)
	}
	if a.SessionAffinity != nil {
		sp := p.Child("sessionAffinity")
		if !ValidCookieName(a.SessionAffinity.CookieName) {
			errs = append(errs, field.Invalid(sp.Child("cookieName"), a.SessionAffinity.CookieName, "must be a cookie token (letters, digits and !#$%&'*+-.^_`|~)"))
		}
		if a.SessionAffinity.MaxAge < 0 {
			errs = append(errs, field.Invalid(sp.Child("maxAge"), a.SessionAffinity.MaxAge, "must not be negative"))
		}
		errs = append(errs, validateCookieAttributes(a.SessionAffinity, sp)...)
		if a.Iterations > 0 && !weighted {
			errs = append(errs, field.Forbidden(sp, "session affinity needs weighted steps (stepWeight or stepWeights)"))
		}
	}
	if strings.EqualFold(string(svc.AppProtocol), "tcp") {
		for name, set := range map[string]bool{"match": len(a.Match) > 0, "mirror": a.Mirror, "sessionAffinity": a.SessionAffinity != nil} {
			if set {
				errs = append(errs, field.Forbidden(p.Child(name), "TCP services support weights only"))
			}
		}
	}
	return errs
}

// uniqueName requires a name that no earlier entry of the list has.
func uniqueName(p *field.Path, name string, seen map[string]bool) field.ErrorList {
	defer func() { seen[name] = true }()
	switch {
	case name == "":
		return field.ErrorList{field.Required(p, "")}
	case seen[name]:
		return field.ErrorList{field.Duplicate(p, name)}
	}
	return nil
}

func validateMetrics(metrics []CanaryMetric, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, m := range metrics {
		mp := p.Index(i)
		errs = append(errs, uniqueName(mp.Child("name"), m.Name, seen)...)
		builtin := m.Name == MetricRequestSuccessRate || m.Name == MetricRequestDuration
		if m.TemplateRef == nil && m.Query == "" && m.Name != "" && !builtin {
			errs = append(errs, field.Invalid(mp.Child("name"), m.Name, fmt.Sprintf("is not a built-in metric (%s, %s); custom metrics need a templateRef or a query", MetricRequestSuccessRate, MetricRequestDuration)))
		}
		if m.TemplateRef == nil && m.Query != "" && !builtin {
			if err := querytemplate.Validate(m.Query); err != nil {
				errs = append(errs, field.Invalid(mp.Child("query"), m.Query, err.Error()))
			}
		}
		if m.TemplateRef != nil && m.TemplateRef.Name == "" {
			errs = append(errs, field.Required(mp.Child("templateRef", "name"), "the MetricTemplate's name"))
		}
		if m.Interval != "" {
			errs = append(errs, durationField(mp.Child("interval"), m.Interval)...)
		}
		if r := m.ThresholdRange; r != nil && r.Min != nil && r.Max != nil && *r.Min > *r.Max {
			errs = append(errs, field.Invalid(mp.Child("thresholdRange"), fmt.Sprintf("min=%g max=%g", *r.Min, *r.Max), "min must not exceed max"))
		}
		for k := range m.TemplateVariables {
			if !templateVarName.MatchString(k) {
				errs = append(errs, field.Invalid(mp.Child("templateVariables").Key(k), k, "must be an identifier: letters, digits and _"))
			}
		}
	}
	return errs
}

func validateWebhooks(hooks []CanaryWebhook, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, h := range hooks {
		hp := p.Index(i)
		errs = append(errs, uniqueName(hp.Child("name"), h.Name, seen)...)
		if h.Type != "" && !slices.Contains(HookTypes, h.Type) {
			errs = append(errs, field.NotSupported(hp.Child("type"), h.Type, HookTypes))
		}
		if err := httpURL(h.URL); err != nil {
			errs = append(errs, field.Invalid(hp.Child("url"), h.URL, err.Error()))
		}
		if h.Timeout != "" {
			errs = append(errs, durationField(hp.Child("timeout"), h.Timeout)...)
		}
		if h.Retries < 0 {
			errs = append(errs, field.Invalid(hp.Child("retries"), h.Retries, "must not be negative"))
		}
	}
	return errs
}

func validateAlerts(alerts []CanaryAlert, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, al := range alerts {
		ap := p.Index(i)
		if al.Name == "" {
			errs = append(errs, field.Required(ap.Child("name"), ""))
		}
		if al.Severity != "" && !slices.Contains([]AlertSeverity{SeverityInfo, SeverityWarn, SeverityError}, al.Severity) {
			errs = append(errs, field.NotSupported(ap.Child("severity"), al.Severity, []AlertSeverity{SeverityInfo, SeverityWarn, SeverityError}))
		}
		if al.ProviderRef.Name == "" {
			errs = append(errs, field.Required(ap.Child("providerRef", "name"), "the AlertProvider's name"))
		}
	}
	return errs
}

func validateMatch(m *HTTPMatchRequest, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(m.Headers) == 0 && len(m.QueryParams) == 0 && m.URI == nil && m.Method == nil &&
		m.Authority == nil && m.Scheme == nil && len(m.WithoutHeaders) == 0 {
		errs = append(errs, field.Required(p, "a match needs at least one of headers, queryParams, uri, method, authority, scheme or withoutHeaders"))
	}
	for k, sm := range m.WithoutHeaders {
		errs = append(errs, validateStringMatch(&sm, p.Child("withoutHeaders").Key(k))...)
	}
	for name, sm := range map[string]*StringMatch{"authority": m.Authority, "scheme": m.Scheme} {
		if sm != nil {
			errs = append(errs, validateStringMatch(sm, p.Child(name))...)
		}
	}
	if m.Port < 0 || m.Port > 65535 {
		errs = append(errs, field.Invalid(p.Child("port"), m.Port, "must be from 1 to 65535"))
	}
	for k, sm := range m.Headers {
		errs = append(errs, validateStringMatch(&sm, p.Child("headers").Key(k))...)
	}
	for k, sm := range m.QueryParams {
		errs = append(errs, validateStringMatch(&sm, p.Child("queryParams").Key(k))...)
	}
	if m.URI != nil {
		errs = append(errs, validateStringMatch(m.URI, p.Child("uri"))...)
	}
	if m.Method != nil {
		errs = append(errs, validateStringMatch(m.Method, p.Child("method"))...)
	}
	return errs
}

func validateStringMatch(m *StringMatch, p *field.Path) field.ErrorList {
	n := 0
	for _, set := range []bool{m.Exact != "", m.Prefix != "", m.Suffix != "", m.Regex != "", m.Present} {
		if set {
			n++
		}
	}
	if n != 1 {
		return field.ErrorList{field.Invalid(p, fmt.Sprintf("%+v", *m), "set exactly one of exact, prefix, suffix, regex or present")}
	}
	if m.Regex != "" {
		if _, err := regexp.Compile(m.Regex); err != nil {
			return field.ErrorList{field.Invalid(p.Child("regex"), m.Regex, "not a valid RE2 expression: "+err.Error())}
		}
	}
	return nil
}

var templateVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func durationField(p *field.Path, v string) field.ErrorList {
	if err := positiveDuration(v); err != nil {
		return field.ErrorList{field.Invalid(p, v, err.Error())}
	}
	return nil
}

func httpURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an absolute http:// or https:// URL")
	}
	return nil
}

// ValidateMetricTemplate checks a MetricTemplate, including that its query
// uses only known template variables.
func ValidateMetricTemplate(t *MetricTemplate) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec")
	pt := t.Spec.Provider.Type
	if pt != "" && !slices.Contains(ProviderTypes, pt) {
		errs = append(errs, field.NotSupported(p.Child("provider", "type"), pt, ProviderTypes))
	}
	errs = append(errs, validateProviderNeeds(p.Child("provider"), &t.Spec.Provider)...)
	if a := t.Spec.Provider.Address; a != "" {
		if err := httpURL(a); err != nil {
			// The value is not echoed: it may carry credentials.
			errs = append(errs, field.Invalid(p.Child("provider", "address"), field.OmitValueType{}, err.Error()))
		}
	}
	if t.Spec.Provider.SecretRef != nil && t.Spec.Provider.SecretRef.Name == "" {
		errs = append(errs, field.Required(p.Child("provider", "secretRef", "name"), ""))
	}
	if strings.TrimSpace(t.Spec.Query) == "" {
		errs = append(errs, field.Required(p.Child("query"), "a PromQL query"))
	} else if err := querytemplate.ValidateDialect(t.Spec.Query, QueryDialect(pt)); err != nil {
		errs = append(errs, field.Invalid(p.Child("query"), t.Spec.Query, err.Error()))
	}
	return errs
}

// validateProviderNeeds checks what a provider type cannot run without:
// CloudWatch a region, Graphite and InfluxDB an address (in the template
// or in its Secret's "address" key).
func validateProviderNeeds(p *field.Path, mp *MetricProvider) field.ErrorList {
	switch mp.Type {
	case ProviderCloudWatch:
		if mp.Region == "" {
			return field.ErrorList{field.Required(p.Child("region"), "cloudwatch needs the AWS region, e.g. us-east-1")}
		}
	case ProviderGraphite, ProviderInfluxDB:
		if mp.Address == "" && mp.SecretRef == nil {
			return field.ErrorList{field.Required(p.Child("address"), fmt.Sprintf("%s has no default address", mp.Type))}
		}
	}
	return nil
}

// ValidateAlertProvider checks an AlertProvider.
func ValidateAlertProvider(a *AlertProvider) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec")
	types := []AlertProviderType{AlertSlack, AlertMSTeams, AlertDiscord, AlertGeneric}
	if !slices.Contains(types, a.Spec.Type) {
		errs = append(errs, field.NotSupported(p.Child("type"), a.Spec.Type, types))
	}
	switch {
	case a.Spec.Address == "" && a.Spec.SecretRef == nil:
		errs = append(errs, field.Required(p.Child("address"), "set address or secretRef (a Secret with key \"address\")"))
	case a.Spec.Address != "":
		if err := httpURL(a.Spec.Address); err != nil {
			// A webhook URL is a credential: never echo it.
			errs = append(errs, field.Invalid(p.Child("address"), field.OmitValueType{}, err.Error()))
		}
	}
	if a.Spec.SecretRef != nil && a.Spec.SecretRef.Name == "" {
		errs = append(errs, field.Required(p.Child("secretRef", "name"), ""))
	}
	return errs
}

// annotationFields maps spec fields to the annotations that set them, so
// that errors found on an annotation-derived spec name the annotation.
var annotationFields = map[string]string{
	"spec.analysis.stepWeight":      AnnotationStepWeight,
	"spec.analysis.maxWeight":       AnnotationMaxWeight,
	"spec.analysis.stepWeights":     AnnotationStepWeights,
	"spec.analysis.iterations":      AnnotationIterations,
	"spec.analysis.interval":        AnnotationInterval,
	"spec.analysis.threshold":       AnnotationThreshold,
	"spec.analysis.mirror":          AnnotationMirror,
	"spec.analysis.mirrorWeight":    AnnotationMirror,
	"spec.analysis.sessionAffinity": AnnotationSessionCookie,
	"spec.service.name":             AnnotationService,
	"spec.service.port":             AnnotationPort,
	"spec.service.appProtocol":      AnnotationProtocol,
}

// ValidateAnnotations checks a Deployment's serin annotations, alone and
// together (max-weight below step-weight, mirror with a TCP protocol…).
// Errors name the annotation.
func ValidateAnnotations(name string, ann map[string]string) field.ErrorList {
	spec, errs := SpecFromAnnotations(name, ann)
	if len(errs) > 0 {
		return errs
	}
	for _, e := range ValidateCanarySpec(spec, field.NewPath("spec")) {
		for prefix, key := range annotationFields {
			if e.Field == prefix || strings.HasPrefix(e.Field, prefix+".") || strings.HasPrefix(e.Field, prefix+"[") {
				e.Field = annPath(key).String()
				break
			}
		}
		errs = append(errs, e)
	}
	return errs
}

func sortErrors(errs field.ErrorList) field.ErrorList {
	slices.SortStableFunc(errs, func(a, b *field.Error) int { return strings.Compare(a.Field, b.Field) })
	return errs
}
