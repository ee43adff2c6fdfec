package v1alpha1

import (
	"fmt"
	"regexp"
	"strings"
	"text/template"
)

// TemplateVariables are the variables a MetricTemplate query may use, as
// {{ name }}; custom ones come from a Canary metric's templateVariables as
// {{ variables.NAME }}.
var TemplateVariables = []string{"canary", "interval", "namespace", "service", "stable", "target"}

// TemplateFuncs returns the template functions for the variables, each
// answering with values[name]; "variables" answers with vars.
func TemplateFuncs(values map[string]string, vars map[string]string) template.FuncMap {
	funcs := template.FuncMap{}
	for _, name := range TemplateVariables {
		funcs[name] = func() string { return values[name] }
	}
	funcs["variables"] = func() map[string]string { return vars }
	return funcs
}

var undefinedFunc = regexp.MustCompile(`function "([^"]+)" not defined`)

// ValidateQueryTemplate parses a query template and reports the first
// variable that does not exist, or a syntax error.
func ValidateQueryTemplate(q string) error {
	_, err := template.New("query").Funcs(TemplateFuncs(nil, nil)).Option("missingkey=error").Parse(q)
	if err == nil {
		return nil
	}
	if m := undefinedFunc.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("unknown template variable %q; known variables: %s, and variables.NAME from the Canary's templateVariables",
			m[1], strings.Join(TemplateVariables, ", "))
	}
	return fmt.Errorf("not a valid template: %w", err)
}
