package v1alpha1

// Variables of a MetricTemplate query, written {{ name }} in the query.
const (
	// TemplateVarName is the Canary's name.
	TemplateVarName = "name"
	// TemplateVarNamespace is the Canary's namespace.
	TemplateVarNamespace = "namespace"
	// TemplateVarTarget is the workload under analysis: the canary copy
	// (<targetRef.name>-canary). Flagger's target is its canary too, so a
	// query written for Flagger keeps measuring the new version.
	TemplateVarTarget = "target"
	// TemplateVarCanary is the canary copy's Deployment name.
	TemplateVarCanary = "canary"
	// TemplateVarStable is the stable Deployment's name (targetRef.name).
	TemplateVarStable = "stable"
	// TemplateVarService is the released Service's name.
	TemplateVarService = "service"
	// TemplateVarInterval is the query window as a Prometheus duration: the
	// metric's interval, shortened to the time since the current weight was
	// applied.
	TemplateVarInterval = "interval"
	// TemplateVariablesPrefix starts a user variable, {{ variables.NAME }},
	// set in the Canary's metrics[].templateVariables.
	TemplateVariablesPrefix = "variables."
)

// MetricTemplateVariables lists the built-in template variables, sorted.
var MetricTemplateVariables = []string{
	TemplateVarCanary, TemplateVarInterval, TemplateVarName, TemplateVarNamespace,
	TemplateVarService, TemplateVarStable, TemplateVarTarget,
}
