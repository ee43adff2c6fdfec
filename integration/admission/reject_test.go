package admission

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// rejection is a bad object and what `kubectl apply` must say about it.
type rejection struct {
	name     string
	kind     string // for kubectl get
	manifest func(ns, name string) string
	// by is who rejects it: one of serin's validating webhooks, or "" for
	// the CRD's schema (then serin is never asked).
	by string
	// want are the parts of the message: the field or annotation, the
	// value, and what is allowed.
	want []string
}

func canary(analysis string) func(ns, name string) string {
	return func(ns, name string) string {
		return fmt.Sprintf(`apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: %s, namespace: %s}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: app}
  service: {port: 9898}
  analysis:
%s`, name, ns, analysis)
	}
}

func annotated(ann map[string]string) func(ns, name string) string {
	return func(ns, name string) string {
		a := map[string]string{v1alpha1.AnnotationCanary: "enabled"}
		for k, v := range ann {
			a[k] = v
		}
		return deploy{ns: ns, name: name, image: "6.0.0", annotations: a}.yaml()
	}
}

func metricTemplate(query string) func(ns, name string) string {
	return func(ns, name string) string {
		return fmt.Sprintf(`apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: %s, namespace: %s}
spec:
  provider: {type: prometheus, address: "http://prometheus.monitoring:9090"}
  query: %q
`, name, ns, query)
	}
}

func metricTemplateOf(provider, query string) func(ns, name string) string {
	return func(ns, name string) string {
		return fmt.Sprintf("apiVersion: serin.dev/v1alpha1\nkind: MetricTemplate\nmetadata: {name: %s, namespace: %s}\nspec:\n  provider: %s\n  query: %q\n",
			name, ns, provider, query)
	}
}

func alertProvider(spec string) func(ns, name string) string {
	return func(ns, name string) string {
		return fmt.Sprintf("apiVersion: serin.dev/v1alpha1\nkind: AlertProvider\nmetadata: {name: %s, namespace: %s}\nspec: %s\n", name, ns, spec)
	}
}

// resources are the API resources of the kinds.
var resources = map[string]string{
	"deployment": "deployments", "canary": "canaries", "metrictemplate": "metrictemplates", "alertprovider": "alertproviders",
}

// The validating webhooks, as serin's log and metrics name them.
const (
	byDeployment     = "validate-deployment"
	byCanary         = "validate-canary"
	byMetricTemplate = "validate-metrictemplate"
	byAlertProvider  = "validate-alertprovider"
)

var rejections = []rejection{
	// serin annotations on a Deployment: serin's annotation checks.
	{"ann-step-weight-0", "deployment", annotated(map[string]string{v1alpha1.AnnotationStepWeight: "0"}), byDeployment,
		[]string{"metadata.annotations[serin.dev/step-weight]", `"0"`, "from 1 to 100"}},
	{"ann-step-weight-150", "deployment", annotated(map[string]string{v1alpha1.AnnotationStepWeight: "150"}), byDeployment,
		[]string{"metadata.annotations[serin.dev/step-weight]", `"150"`, "from 1 to 100"}},
	{"ann-max-below-step", "deployment", annotated(map[string]string{v1alpha1.AnnotationStepWeight: "20", v1alpha1.AnnotationMaxWeight: "10"}), byDeployment,
		[]string{"metadata.annotations[serin.dev/max-weight]", "10", "must be at least", "(20)"}},
	{"ann-negative-interval", "deployment", annotated(map[string]string{v1alpha1.AnnotationInterval: "-1m"}), byDeployment,
		[]string{"metadata.annotations[serin.dev/interval]", `"-1m"`, "must be positive"}},
	{"ann-bad-duration", "deployment", annotated(map[string]string{v1alpha1.AnnotationInterval: "soon"}), byDeployment,
		[]string{"metadata.annotations[serin.dev/interval]", `"soon"`, `must be a duration such as "30s" or "1m"`}},
	{"ann-unknown", "deployment", annotated(map[string]string{"serin.dev/stepweight": "10"}), byDeployment,
		[]string{"metadata.annotations", `"serin.dev/stepweight"`, `supported values: "serin.dev/canary", "serin.dev/step-weight"`}},

	// Canary: the CRD's OpenAPI schema rejects ranges and enums before
	// serin is asked; serin rejects what the schema cannot express.
	{"canary-step-weight-0", "canary", canary("    stepWeight: 0\n"), "",
		[]string{"spec.analysis.stepWeight", "Invalid value: 0", "greater than or equal to 1"}},
	{"canary-step-weight-150", "canary", canary("    stepWeight: 150\n"), "",
		[]string{"spec.analysis.stepWeight", "Invalid value: 150", "less than or equal to 100"}},
	{"canary-max-below-step", "canary", canary("    stepWeight: 20\n    maxWeight: 10\n"), byCanary,
		[]string{"spec.analysis.maxWeight", "Invalid value: 10", "must be at least stepWeight (20)"}},
	{"canary-negative-interval", "canary", canary("    interval: -1m\n    stepWeight: 10\n"), byCanary,
		[]string{"spec.analysis.interval", `"-1m"`, "must be positive"}},
	{"canary-bad-duration", "canary", canary("    interval: 1 minute\n    stepWeight: 10\n"), byCanary,
		[]string{"spec.analysis.interval", `"1 minute"`, `must be a duration such as "30s" or "1m"`}},
	{"canary-bad-hook-timeout", "canary", canary("    stepWeight: 10\n    webhooks:\n    - {name: load, url: \"http://tester/\", timeout: \"10\"}\n"), byCanary,
		[]string{"spec.analysis.webhooks[0].timeout", `"10"`, "must be a duration"}},
	{"canary-unknown-hook-type", "canary", canary("    stepWeight: 10\n    webhooks:\n    - {name: gate, type: pre-promotion, url: \"http://tester/gate\"}\n"), "",
		[]string{"spec.analysis.webhooks[0].type", `"pre-promotion"`, `supported values: "confirm-rollout"`}},

	// MetricTemplate: the query's template variables.
	{"template-unknown-variable", "metrictemplate", metricTemplate(`sum(rate(http_requests_total{namespace="{{ namespace }}",pod=~"{{ deployment }}-.*"}[{{ interval }}]))`), byMetricTemplate,
		[]string{"spec.query", `variable "deployment"`, "unknown variable; known are", "namespace"}},
	{"template-unquoted-variable", "metrictemplate", metricTemplate(`sum(rate(requests_total{app={{ target }}}[1m]))`), byMetricTemplate,
		[]string{"spec.query", `variable "target"`, "must be inside a quoted string"}},

	// MetricTemplate: Flagger's provider types serin has no client for
	// pass the schema (Flagger's enum) and are refused by serin, naming
	// the types it queries; a provider's own needs.
	{"template-unqueried-type", "metrictemplate", metricTemplateOf(`{type: stackdriver}`, `fetch k8s_container`), byMetricTemplate,
		[]string{"spec.provider.type", `"stackdriver"`, `supported values: "cloudwatch", "datadog", "graphite", "influxdb", "newrelic", "prometheus"`}},
	{"template-cloudwatch-no-region", "metrictemplate", metricTemplateOf(`{type: cloudwatch}`, `[{"Id": "e1", "Expression": "1"}]`), byMetricTemplate,
		[]string{"spec.provider.region", "Required value", "AWS region"}},
	{"template-graphite-unsafe-string", "metrictemplate", metricTemplateOf(`{type: graphite, address: "http://graphite:8080"}`, `target=x.{{ deployment }}`), byMetricTemplate,
		[]string{"spec.query", `variable "deployment"`, "unknown variable"}},
	// Flagger's inline query is PromQL: the same placement rules.
	{"canary-inline-query-unquoted", "canary", canary("    stepWeight: 10\n    metrics:\n    - {name: errors, query: \"sum(rate(errors{app={{ target }}}[1m]))\"}\n"), byCanary,
		[]string{"spec.analysis.metrics[0].query", `variable "target"`, "must be inside a quoted string"}},
	{"canary-metrics-server-not-url", "canary", func(ns, name string) string {
		return strings.Replace(canary("    stepWeight: 10\n")(ns, name), "  service: {port: 9898}\n", "  service: {port: 9898}\n  metricsServer: prometheus:9090\n", 1)
	}, byCanary, []string{"spec.metricsServer", "must be an absolute http:// or https:// URL"}},

	// AlertProvider.
	{"alert-unknown-type", "alertprovider", alertProvider(`{type: pagerduty, address: "https://events.example.com/"}`), "",
		[]string{"spec.type", `"pagerduty"`, `supported values: "slack", "msteams", "discord", "generic"`}},
	{"alert-bad-address", "alertprovider", alertProvider(`{type: slack, address: "hooks.slack.example.com/services/x"}`), byAlertProvider,
		[]string{"spec.address", "must be an absolute http:// or https:// URL"}},
	{"alert-no-address", "alertprovider", alertProvider(`{type: discord}`), byAlertProvider,
		[]string{"spec.address", "Required value", "set address or secretRef"}},
}

// testRejects applies each bad object with kubectl: the apply fails with
// the message, from the CRD's schema or serin's webhook as expected, and
// nothing is stored. Then bad updates of good objects leave them as they
// were, even where the hold had already mutated the request.
func (e *env) testRejects(t *testing.T) {
	t.Parallel()
	ns := e.c.Namespace(t)
	for _, r := range rejections {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			_, err := e.c.Kubectl(ctx, r.manifest(ns, r.name), "apply", "-f", "-")
			if err == nil {
				t.Fatalf("applied")
			}
			msg := err.Error()
			t.Logf("%s", msg[strings.Index(msg, "apply -f -")+len("apply -f -"):])
			for _, w := range r.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q", w)
				}
			}
			// A webhook URL is a credential: the denial never echoes it.
			if r.kind == "alertprovider" && strings.Contains(msg, "slack.example.com/services") {
				t.Errorf("message echoes the alert address")
			}
			// kubectl prints an Invalid status the same way whoever made
			// it; serin's log tells whether serin was asked and denied.
			var validations []call
			for _, c := range e.calls(resources[r.kind], ns, r.name) {
				if strings.HasPrefix(c.Webhook, "validate-") {
					validations = append(validations, c)
				}
			}
			switch {
			case r.by == "" && len(validations) > 0:
				t.Errorf("serin was asked (%+v), want the CRD schema to reject first", validations)
			case r.by != "" && (len(validations) != 1 || validations[0].Webhook != r.by || validations[0].Result != "denied"):
				t.Errorf("serin's checks answered %+v, want %s denied", validations, r.by)
			}
			if out, err := e.c.Kubectl(ctx, "", "get", r.kind, r.name, "-n", ns, "-o", "name"); err == nil || !strings.Contains(err.Error(), "NotFound") {
				t.Errorf("stored anyway: %q %v", out, err)
			}
		})
	}

	t.Run("deployment-update", func(t *testing.T) {
		t.Parallel()
		// A new template with a bad annotation: the hold mutates the
		// request, the annotation check denies it, nothing is stored.
		good := deploy{ns: ns, name: "update", image: "6.0.0",
			annotations: map[string]string{v1alpha1.AnnotationCanary: "enabled", v1alpha1.AnnotationStepWeight: "10"}}
		e.kubectlDeployment(t, good.yaml(), "apply", "-o", "json", "-f", "-")
		e.settled(t, ns, "update")
		bad := good
		bad.image = "6.0.1"
		bad.annotations = map[string]string{v1alpha1.AnnotationCanary: "enabled", v1alpha1.AnnotationStepWeight: "150"}
		n := len(e.calls("deployments", ns, "update"))
		e.noWrite(t, ns, "update", "a bad update", func() {
			_, err := e.c.Kubectl(context.Background(), bad.yaml(), "apply", "-f", "-")
			if err == nil || !strings.Contains(err.Error(), `metadata.annotations[serin.dev/step-weight]: Invalid value: "150"`) {
				t.Errorf("bad update: %v", err)
			}
		})
		d := e.get(t, ns, "update")
		if image(d) != "ghcr.io/stefanprodan/podinfo:6.0.0" || holdOf(d) != (hold{}) || d.Annotations[v1alpha1.AnnotationStepWeight] != "10" {
			t.Errorf("stored after a denied update: image %s hold %+v step-weight %q", image(d), holdOf(d), d.Annotations[v1alpha1.AnnotationStepWeight])
		}
		got := e.calls("deployments", ns, "update")[n:]
		if len(got) < 2 || got[0].Webhook != "hold" || got[0].Result != "patched" || got[len(got)-1].Webhook != "validate-deployment" || got[len(got)-1].Result != "denied" {
			t.Errorf("calls %+v, want the hold patched then the check denied", got)
		}
	})

	t.Run("canary-update", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		if _, err := e.c.Kubectl(ctx, canary("    stepWeight: 10\n    maxWeight: 50\n")(ns, "update"), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		get := func() string {
			out, err := e.c.Kubectl(ctx, "", "get", "canary", "update", "-n", ns, "-o", "jsonpath={.metadata.generation} {.spec.analysis.stepWeight} {.spec.analysis.maxWeight}")
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		before := get()
		_, err := e.c.Kubectl(ctx, canary("    stepWeight: 10\n    maxWeight: 5\n")(ns, "update"), "apply", "-f", "-")
		if err == nil || !strings.Contains(err.Error(), "spec.analysis.maxWeight: Invalid value: 5: must be at least stepWeight (10)") {
			t.Errorf("bad update: %v", err)
		}
		if after := get(); after != before || !strings.HasSuffix(before, " 10 50") {
			t.Errorf("stored after a denied update: %q, was %q", after, before)
		}
	})
}
