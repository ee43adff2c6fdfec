package v1alpha1

import "github.com/serin-dev/serin/api/querytemplate"

// ValidateQueryTemplate checks a MetricTemplate query: known variables
// only, each where its value cannot change the query. Errors name the
// variable and its position.
func ValidateQueryTemplate(q string) error {
	return querytemplate.Validate(q)
}
