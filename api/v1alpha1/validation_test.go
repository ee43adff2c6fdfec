package v1alpha1

import (
	"strings"
	"testing"
)

func validCanary() *Canary {
	return &Canary{Spec: CanarySpec{
		TargetRef: LocalObjectReference{Name: "podinfo"},
		Service:   CanaryService{Port: 9898},
		Analysis: &CanaryAnalysis{
			Interval: "1m", Threshold: 5, StepWeight: 10, MaxWeight: 50,
			Metrics:  []CanaryMetric{{Name: MetricRequestSuccessRate, ThresholdRange: &CanaryThresholdRange{Min: ptrTo(99.0)}}},
			Webhooks: []CanaryWebhook{{Name: "load", Type: HookRollout, URL: "http://tester.test/"}},
		},
	}}
}

func ptrTo[T any](v T) *T { return &v }

func TestValidateCanary(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Canary)
		want   []string // substrings of the error: field, value, what is allowed
	}{
		{"valid", func(*Canary) {}, nil},
		{"valid Flagger routing fields", func(c *Canary) {
			c.Spec.Service.CorsPolicy = &CorsPolicy{AllowOrigins: []OriginMatch{{Regex: "https://.*"}}, AllowHeaders: []string{"*"}, MaxAge: "24h"}
			c.Spec.Service.TrafficPolicy = &TrafficPolicy{
				LoadBalancer:     &LoadBalancerSettings{ConsistentHash: &ConsistentHashLB{HTTPCookie: &HTTPCookie{Name: "user", TTL: "0s"}}},
				OutlierDetection: &OutlierDetection{Interval: "10s", MaxEjectionPercent: ptrTo[int32](100)},
			}
			c.Spec.Service.Match = []HTTPMatchRequest{{Authority: &StringMatch{Prefix: "app."}, Port: 9898, IgnoreURICase: true}}
			c.Spec.Analysis.SessionAffinity = &SessionAffinity{CookieName: "c", PrimaryCookieName: "p", Path: "/app", Domain: ".example.com", SameSite: "Lax"}
		}, nil},
		{"step weight above 100", func(c *Canary) { c.Spec.Analysis.StepWeight = 150 },
			[]string{"spec.analysis.stepWeight", "150", "from 1 to 100"}},
		{"max weight below step weight", func(c *Canary) { c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight = 30, 20 },
			[]string{"spec.analysis.maxWeight", "20", "at least stepWeight (30)"}},
		{"negative interval", func(c *Canary) { c.Spec.Analysis.Interval = "-1m" },
			[]string{"spec.analysis.interval", "-1m", "must be positive"}},
		{"unparsable duration", func(c *Canary) { c.Spec.Analysis.Interval = "one minute" },
			[]string{"spec.analysis.interval", "one minute", "duration"}},
		{"unknown hook type", func(c *Canary) { c.Spec.Analysis.Webhooks[0].Type = "pre-flight" },
			[]string{"spec.analysis.webhooks[0].type", "pre-flight", "confirm-rollout"}},
		{"hook url not absolute", func(c *Canary) { c.Spec.Analysis.Webhooks[0].URL = "tester/" },
			[]string{"spec.analysis.webhooks[0].url", "absolute"}},
		{"descending step weights", func(c *Canary) {
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight = 0, 0
			c.Spec.Analysis.StepWeights = []int32{10, 5}
		}, []string{"spec.analysis.stepWeights[1]", "ascend"}},
		{"A/B without iterations", func(c *Canary) {
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight = 0, 0
			c.Spec.Analysis.Match = []HTTPMatchRequest{{Headers: map[string]StringMatch{"x-canary": {Exact: "insider"}}}}
		}, []string{"spec.analysis.iterations", "Required"}},
		{"bad regex", func(c *Canary) {
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.MaxWeight, c.Spec.Analysis.Iterations = 0, 0, 5
			c.Spec.Analysis.Match = []HTTPMatchRequest{{Headers: map[string]StringMatch{"user-agent": {Regex: "(Firefox"}}}}
		}, []string{"spec.analysis.match[0].headers[user-agent].regex", "RE2"}},
		{"threshold range inverted", func(c *Canary) {
			c.Spec.Analysis.Metrics[0].ThresholdRange.Max = ptrTo(50.0)
		}, []string{"spec.analysis.metrics[0].thresholdRange", "min must not exceed max"}},
		{"unknown metric without template", func(c *Canary) { c.Spec.Analysis.Metrics[0].Name = "error-budget" },
			[]string{"spec.analysis.metrics[0].name", "error-budget", "templateRef"}},
		{"inline query with an unsafe placeholder", func(c *Canary) {
			c.Spec.Analysis.Metrics[0].Name, c.Spec.Analysis.Metrics[0].Query = "errors", `sum(x{w={{ target }}})`
		}, []string{"spec.analysis.metrics[0].query", `variable "target"`, "quoted string"}},
		{"metrics server not a URL", func(c *Canary) { c.Spec.MetricsServer = "prometheus:9090" },
			[]string{"spec.metricsServer", "absolute http"}},
		{"tcp with mirror", func(c *Canary) { c.Spec.Service.AppProtocol = "tcp"; c.Spec.Analysis.Mirror = true },
			[]string{"spec.analysis.mirror", "TCP"}},
		{"missing target", func(c *Canary) { c.Spec.TargetRef.Name = "" }, []string{"spec.targetRef.name", "Required"}},
		{"primary cookie same as cookie", func(c *Canary) {
			c.Spec.Analysis.SessionAffinity = &SessionAffinity{CookieName: "flagger-cookie", PrimaryCookieName: "flagger-cookie"}
		}, []string{"spec.analysis.sessionAffinity.primaryCookieName", "flagger-cookie", "other than cookieName"}},
		{"cookie path with a separator", func(c *Canary) {
			c.Spec.Analysis.SessionAffinity = &SessionAffinity{CookieName: "a", Path: "/x; Domain=evil"}
		}, []string{"spec.analysis.sessionAffinity.path", "/x; Domain=evil", "without ';'"}},
		{"cors origin with two patterns", func(c *Canary) {
			c.Spec.Service.CorsPolicy = &CorsPolicy{AllowOrigins: []OriginMatch{{Exact: "https://a", Prefix: "https://"}}}
		}, []string{"spec.service.corsPolicy.allowOrigins[0]", "exactly one"}},
		{"cors max age not a duration", func(c *Canary) { c.Spec.Service.CorsPolicy = &CorsPolicy{MaxAge: "a day"} },
			[]string{"spec.service.corsPolicy.maxAge", "a day", "duration"}},
		{"consistent hash on two keys", func(c *Canary) {
			c.Spec.Service.TrafficPolicy = &TrafficPolicy{LoadBalancer: &LoadBalancerSettings{ConsistentHash: &ConsistentHashLB{
				HTTPHeaderName: "x-user", UseSourceIP: ptrTo(true)}}}
		}, []string{"spec.service.trafficPolicy.loadBalancer.consistentHash", "exactly one of httpCookie"}},
		{"ring too large", func(c *Canary) {
			c.Spec.Service.TrafficPolicy = &TrafficPolicy{LoadBalancer: &LoadBalancerSettings{ConsistentHash: &ConsistentHashLB{
				HTTPHeaderName: "x-user", MinimumRingSize: ptrTo[int64](1 << 30)}}}
		}, []string{"spec.service.trafficPolicy.loadBalancer.consistentHash.minimumRingSize", "1073741824", "8388608"}},
		{"warmup not a duration", func(c *Canary) {
			c.Spec.Service.TrafficPolicy = &TrafficPolicy{LoadBalancer: &LoadBalancerSettings{WarmupDurationSecs: "60"}}
		}, []string{"spec.service.trafficPolicy.loadBalancer.warmupDurationSecs", "60", "duration"}},
		{"ejection percent above 100", func(c *Canary) {
			c.Spec.Service.TrafficPolicy = &TrafficPolicy{OutlierDetection: &OutlierDetection{MaxEjectionPercent: ptrTo[int32](150)}}
		}, []string{"spec.service.trafficPolicy.outlierDetection.maxEjectionPercent", "150", "0 to 100"}},
		{"idle timeout not a duration", func(c *Canary) {
			c.Spec.Service.TrafficPolicy = &TrafficPolicy{ConnectionPool: &ConnectionPoolSettings{HTTP: &HTTPConnectionPool{IdleTimeout: "soon"}}}
		}, []string{"spec.service.trafficPolicy.connectionPool.http.idleTimeout", "soon", "duration"}},
		{"match port out of range", func(c *Canary) {
			c.Spec.Service.Match = []HTTPMatchRequest{{Authority: &StringMatch{Exact: "a"}, Port: 70000}}
		}, []string{"spec.service.match[0].port", "70000", "1 to 65535"}},
		{"bad judge rate", func(c *Canary) { c.Spec.Judge = &Judge{FalseRollbackRate: "0.9"} },
			[]string{"spec.judge.falseRollbackRate", "0.9", "probability"}},
		{"service metadata", func(c *Canary) {
			c.Spec.Service.Apex = &CustomMetadata{Labels: map[string]string{"app": "podinfo"}}
			c.Spec.Service.Canary = &CustomMetadata{Labels: map[string]string{"team": "a"}, Annotations: map[string]string{"example.com/x": "1"}}
			c.Spec.Service.Primary = &CustomMetadata{Annotations: map[string]string{"note": "stable pods"}}
		}, nil},
		{"bad canary service label", func(c *Canary) {
			c.Spec.Service.Canary = &CustomMetadata{Labels: map[string]string{"team": "a b"}}
		}, []string{"spec.service.canary.labels", "a b"}},
		{"bad primary service annotation", func(c *Canary) {
			c.Spec.Service.Primary = &CustomMetadata{Annotations: map[string]string{"not a key": "x"}}
		}, []string{"spec.service.primary.annotations", "not a key"}},
		{"service name too long for -primary", func(c *Canary) { c.Spec.Service.Name = strings.Repeat("a", 60) },
			[]string{"spec.service.name", "55"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validCanary()
			tt.mutate(c)
			errs := ValidateCanary(c)
			if tt.want == nil {
				if len(errs) > 0 {
					t.Fatalf("want valid, got %v", errs)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("want an error containing %q, got none", tt.want)
			}
			msg := errs.ToAggregate().Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestValidateAnnotations(t *testing.T) {
	tests := []struct {
		ann  map[string]string
		want []string
	}{
		{map[string]string{AnnotationCanary: "enabled", AnnotationStepWeight: "20", AnnotationMaxWeight: "60", AnnotationInterval: "30s"}, nil},
		{map[string]string{AnnotationCanary: "enabled", AnnotationStepWeight: "0"}, []string{"metadata.annotations[serin.dev/step-weight]", `"0"`, "from 1 to 100"}},
		{map[string]string{AnnotationCanary: "enabled", AnnotationStepWeight: "150"}, []string{"serin.dev/step-weight", "150"}},
		{map[string]string{AnnotationCanary: "enabled", AnnotationStepWeight: "30", AnnotationMaxWeight: "20"}, []string{"metadata.annotations[serin.dev/max-weight]", "at least stepWeight (30)"}},
		{map[string]string{AnnotationCanary: "enabled", AnnotationInterval: "-5s"}, []string{"serin.dev/interval", "-5s", "positive"}},
		{map[string]string{AnnotationCanary: "enabled", AnnotationInterval: "soon"}, []string{"serin.dev/interval", "soon", "duration"}},
		{map[string]string{AnnotationCanary: "yes"}, []string{"serin.dev/canary", "yes", "enabled"}},
		{map[string]string{AnnotationCanary: "enabled", "serin.dev/stepweight": "10"}, []string{"serin.dev/stepweight", "supported values"}},
		{map[string]string{AnnotationCanary: "enabled", AnnotationProtocol: "tcp", AnnotationMirror: "50"}, []string{"serin.dev/mirror", "TCP"}},
		{map[string]string{AnnotationCanary: "enabled", AnnotationSessionCookie: "a b"}, []string{"serin.dev/session-cookie", "cookie"}},
		{map[string]string{AnnotationCanary: "enabled", AnnotationLatencyP99: "fast"}, []string{"serin.dev/latency-p99", "fast"}},
	}
	for _, tt := range tests {
		errs := ValidateAnnotations("podinfo", tt.ann)
		if tt.want == nil {
			if len(errs) > 0 {
				t.Errorf("%v: want valid, got %v", tt.ann, errs)
			}
			continue
		}
		msg := errs.ToAggregate().Error()
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: error %q does not contain %q", tt.ann, msg, w)
			}
		}
	}
}

func TestValidateMetricTemplate(t *testing.T) {
	mt := &MetricTemplate{Spec: MetricTemplateSpec{Query: `sum(rate(x{ns="{{ namespace }}", w="{{ target }}", v="{{ variables.tier }}"}[{{ interval }}]))`}}
	if errs := ValidateMetricTemplate(mt); len(errs) > 0 {
		t.Fatal(errs)
	}
	mt.Spec.Query = `sum(rate(x{ns="{{ namespace }}", w="{{ deployment }}"}[1m]))`
	msg := ValidateMetricTemplate(mt).ToAggregate().Error()
	for _, w := range []string{"spec.query", `variable "deployment": unknown variable`, "namespace"} {
		if !strings.Contains(msg, w) {
			t.Errorf("%q does not contain %q", msg, w)
		}
	}
}

func TestValidateMetricTemplateProviders(t *testing.T) {
	valid := []MetricProvider{
		{Type: ProviderGraphite, Address: "http://graphite:8080"},
		{Type: ProviderInfluxDB, Address: "http://influxdb:8086"},
		{Type: ProviderDatadog},
		{Type: ProviderNewRelic},
		{Type: ProviderCloudWatch, Region: "eu-west-1"},
	}
	for _, p := range valid {
		// Outside strings a name is allowed in every language but PromQL.
		mt := &MetricTemplate{Spec: MetricTemplateSpec{Provider: p, Query: `sum:requests{workload:{{ target }}}.as_count()`}}
		if errs := ValidateMetricTemplate(mt); len(errs) > 0 {
			t.Errorf("%s: %v", p.Type, errs)
		}
	}
	for _, tc := range []struct {
		p    MetricProvider
		want []string
	}{
		{MetricProvider{Type: "stackdriver"}, []string{"spec.provider.type", "stackdriver", "cloudwatch", "datadog", "graphite", "influxdb", "newrelic", "prometheus"}},
		{MetricProvider{Type: ProviderCloudWatch}, []string{"spec.provider.region", "Required"}},
		{MetricProvider{Type: ProviderGraphite}, []string{"spec.provider.address", "no default address"}},
		{MetricProvider{Type: ProviderInfluxDB}, []string{"spec.provider.address", "no default address"}},
	} {
		msg := ValidateMetricTemplate(&MetricTemplate{Spec: MetricTemplateSpec{Provider: tc.p, Query: "q"}}).ToAggregate()
		if msg == nil {
			t.Errorf("%+v: no error", tc.p)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(msg.Error(), w) {
				t.Errorf("%q does not contain %q", msg, w)
			}
		}
	}
}

// TestAddressesNotEchoed: an invalid address is named by its field, never
// by its value (webhook URLs and provider addresses carry credentials).
func TestAddressesNotEchoed(t *testing.T) {
	const secret = "ftp://hooks.example/services/T0/B0/s3cr3t?token=s3cr3t"
	ap := &AlertProvider{Spec: AlertProviderSpec{Type: AlertSlack, Address: secret}}
	mt := &MetricTemplate{Spec: MetricTemplateSpec{Provider: MetricProvider{Address: secret}, Query: "up"}}
	for what, msg := range map[string]string{
		"AlertProvider":  ValidateAlertProvider(ap).ToAggregate().Error(),
		"MetricTemplate": ValidateMetricTemplate(mt).ToAggregate().Error(),
	} {
		if !strings.Contains(msg, "address") || !strings.Contains(msg, "http") || strings.Contains(msg, "s3cr3t") {
			t.Errorf("%s: %q, want the field without its value", what, msg)
		}
	}
}

func TestEffective(t *testing.T) {
	fromAnn, errs := SpecFromAnnotations("podinfo", map[string]string{AnnotationCanary: "enabled", AnnotationStepWeight: "20", AnnotationInterval: "30s"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	eff, conflicts := Effective(fromAnn, nil)
	if eff.Analysis.StepWeight != 20 || eff.Analysis.MaxWeight != 50 || eff.Analysis.Interval != "30s" || len(eff.Analysis.Metrics) != 2 || conflicts != nil {
		t.Fatalf("annotation-only spec: %+v %v", eff.Analysis, conflicts)
	}
	explicit := &CanarySpec{TargetRef: LocalObjectReference{Name: "podinfo"}, Analysis: &CanaryAnalysis{StepWeight: 5, Threshold: 2}}
	eff, conflicts = Effective(fromAnn, explicit)
	if eff.Analysis.StepWeight != 5 || eff.Analysis.Interval != "30s" || eff.Analysis.Threshold != 2 {
		t.Fatalf("explicit must win field by field: %+v", eff.Analysis)
	}
	if len(conflicts) != 1 || conflicts[0].Field != "spec.analysis.stepWeight" || conflicts[0].Annotation != "20" || conflicts[0].Canary != "5" {
		t.Fatalf("conflicts = %v", conflicts)
	}
	if got := eff.Weights(); len(got) != 10 || got[0] != 5 || got[9] != 50 {
		t.Fatalf("weights = %v", got)
	}
}
