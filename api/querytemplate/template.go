// Package querytemplate owns MetricTemplate queries: it finds the
// {{ variable }} placeholders of a PromQL query, validates them (the
// admission webhook calls Validate), and renders a query with every value
// escaped for the place it lands in, so no value can change the query
// around it. The known variables are Variables, plus
// {{ variables.NAME }} from the Canary metric's templateVariables.
//
// Where a placeholder sits decides how its value is written:
//   - inside "…" or '…': escaped as a PromQL string body, so quotes,
//     backslashes and newlines in the value stay inside the string;
//   - inside `…`: written raw, and a value with a backtick is refused;
//   - inside a # comment: written with line breaks replaced by spaces;
//   - anywhere else: only numbers and Prometheus durations are allowed
//     ({{ interval }} is always a duration); other built-in variables there
//     are a validation error.
//
// The package depends on the standard library only, so the API's
// validation can use it.
package querytemplate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Variables are the built-in variables a query may use as {{ name }}.
var Variables = []string{varCanary, varIngress, varInterval, varName, varNamespace, varService, varStable, varTarget}

// Variable names.
const (
	varName      = "name"
	varNamespace = "namespace"
	varTarget    = "target"
	varCanary    = "canary"
	varStable    = "stable"
	varService   = "service"
	// varIngress is Flagger's: the name of the Canary's spec.ingressRef.
	varIngress  = "ingress"
	varInterval = "interval"
	// variablesPrefix starts a user variable, {{ variables.NAME }}, set in
	// the Canary metric's templateVariables.
	variablesPrefix = "variables."
)

// Context is where a placeholder sits in the query text.
type Context int

// Contexts of a placeholder.
const (
	// Code is PromQL outside any string or comment.
	Code Context = iota
	// DoubleQuoted is inside a "…" string.
	DoubleQuoted
	// SingleQuoted is inside a '…' string.
	SingleQuoted
	// RawString is inside a `…` string.
	RawString
	// Comment is inside a # comment.
	Comment
)

func (c Context) String() string {
	switch c {
	case DoubleQuoted:
		return "double-quoted string"
	case SingleQuoted:
		return "single-quoted string"
	case RawString:
		return "raw string"
	case Comment:
		return "comment"
	default:
		return "query code"
	}
}

// Dialect is the query language a template is written in: it decides
// which characters open strings and comments, and how a value is written
// where it lands.
type Dialect int

// Dialects.
const (
	// PromQL is the default: strings in "…", '…' and `…`, # comments,
	// built-in variables other than interval inside strings only.
	PromQL Dialect = iota
	// Text is every other provider's language (Graphite targets, Flux,
	// InfluxQL, Datadog and NRQL queries, CloudWatch's JSON): strings in
	// "…", '…' and `…` end at the end of their line at the latest (an
	// apostrophe in a comment is no error: a value after it is escaped as
	// in a string and cannot leave its line), no comments are known, and
	// a placeholder on a later line is code again. Outside strings a value must be a
	// number, a duration or a plain name (letters, digits, '_', '-', '.',
	// not starting with '-' or '.'), which Kubernetes names always are;
	// inside strings backslash and the quote are escaped with a backslash
	// and control characters are refused.
	Text
)

// Placeholder is one {{ variable }} of a query.
type Placeholder struct {
	// Variable is the name inside the braces: "namespace" or
	// "variables.NAME".
	Variable string
	// Start and End are the byte offsets of "{{" and just past "}}".
	Start, End int
	// Line and Col are 1-based, for messages.
	Line, Col int
	Context   Context
}

// Template is a parsed query.
type Template struct {
	dialect      Dialect
	query        string
	placeholders []Placeholder
}

// Error is a problem with one place of a query.
type Error struct {
	// Variable is the variable concerned, if any.
	Variable string
	Line     int
	Col      int
	Reason   string
}

func (e *Error) Error() string {
	if e.Variable != "" {
		return fmt.Sprintf("query line %d column %d: variable %q: %s", e.Line, e.Col, e.Variable, e.Reason)
	}
	return fmt.Sprintf("query line %d column %d: %s", e.Line, e.Col, e.Reason)
}

// Parse finds the placeholders of a PromQL query and the context of each.
// It fails on an unterminated placeholder or string, or on a placeholder
// that is not a plain variable name.
func Parse(query string) (*Template, error) { return ParseDialect(query, PromQL) }

// fromCode is the context that character c opens in code: a string, a
// comment (PromQL's #), or still code.
func fromCode(c byte, d Dialect) Context {
	switch {
	case c == '"':
		return DoubleQuoted
	case c == '\'':
		return SingleQuoted
	case c == '`':
		return RawString
	case c == '#' && d == PromQL:
		return Comment
	}
	return Code
}

// ParseDialect is Parse for a query in dialect d.
func ParseDialect(query string, d Dialect) (*Template, error) {
	t := &Template{query: query, dialect: d}
	var errs []error
	state := Code
	stringStart := 0
	line, col := 1, 1
	i := 0
	for i < len(query) {
		if strings.HasPrefix(query[i:], "{{") {
			end := strings.Index(query[i+2:], "}}")
			if end < 0 {
				errs = append(errs, &Error{Line: line, Col: col, Reason: `"{{" without a closing "}}"`})
				break
			}
			inner := query[i+2 : i+2+end]
			name := strings.TrimSpace(inner)
			p := Placeholder{Variable: name, Start: i, End: i + 2 + end + 2, Line: line, Col: col, Context: state}
			if !validPlaceholderName(name) {
				errs = append(errs, &Error{Line: line, Col: col, Reason: fmt.Sprintf("placeholder {{%s}} is not a variable name", inner)})
			} else {
				t.placeholders = append(t.placeholders, p)
			}
			line, col = moveOver(query[i:p.End], line, col)
			i = p.End
			continue
		}
		c := query[i]
		switch state {
		case Code:
			if state = fromCode(c, d); state != Code && state != Comment {
				stringStart = i
			}
		case DoubleQuoted, SingleQuoted:
			quote := byte('"')
			if state == SingleQuoted {
				quote = '\''
			}
			switch {
			case c == '\\' && i+1 < len(query) && query[i+1] != '{':
				line, col = moveOver(query[i:i+2], line, col)
				i += 2
				continue
			case c == quote:
				state = Code
			case c == '\n':
				if d == PromQL {
					l, cl := position(query, stringStart)
					errs = append(errs, &Error{Line: l, Col: cl, Reason: "quoted string runs past the end of its line"})
				}
				state = Code
			}
		case RawString:
			if c == '`' || (c == '\n' && d == Text) {
				state = Code
			}
		case Comment:
			if c == '\n' {
				state = Code
			}
		}
		line, col = moveOver(query[i:i+1], line, col)
		i++
	}
	if d == PromQL && (state == DoubleQuoted || state == SingleQuoted || state == RawString) {
		l, c := position(query, stringStart)
		errs = append(errs, &Error{Line: l, Col: c, Reason: "unterminated string"})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// Validate checks a MetricTemplate query: placeholders are well formed,
// name known variables (built-ins or variables.NAME), and built-ins other
// than interval sit inside a quoted string. Every problem is reported,
// each with the variable's name and position.
func Validate(query string) error { return ValidateDialect(query, PromQL) }

// ValidateDialect is Validate for a query in dialect d. In Text, built-in
// variables may also sit outside strings: their values are checked when
// the query is rendered.
func ValidateDialect(query string, d Dialect) error {
	t, err := ParseDialect(query, d)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range t.placeholders {
		if err := checkPlacement(p, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func checkPlacement(p Placeholder, d Dialect) error {
	if strings.HasPrefix(p.Variable, variablesPrefix) {
		return nil // values are checked when rendered
	}
	if !slices.Contains(Variables, p.Variable) {
		return &Error{Variable: p.Variable, Line: p.Line, Col: p.Col,
			Reason: "unknown variable; known are " + strings.Join(Variables, ", ") + " and variables.NAME"}
	}
	if p.Context == Code && p.Variable != varInterval && d == PromQL {
		return &Error{Variable: p.Variable, Line: p.Line, Col: p.Col,
			Reason: `must be inside a quoted string, e.g. label="{{ ` + p.Variable + ` }}"`}
	}
	return nil
}

// Placeholders returns the placeholders in query order.
func (t *Template) Placeholders() []Placeholder { return slices.Clone(t.placeholders) }

// Variables returns the names of the variables used, sorted, once each.
func (t *Template) Variables() []string {
	var out []string
	for _, p := range t.placeholders {
		out = append(out, p.Variable)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// validPlaceholderName accepts a built-in name or variables.NAME, where
// names are letters, digits, '_' and '-'.
func validPlaceholderName(s string) bool {
	name, user := strings.CutPrefix(s, variablesPrefix)
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
		case (r >= '0' && r <= '9') || r == '-':
			if i == 0 && !user {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func moveOver(s string, line, col int) (int, int) {
	for _, r := range s {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func position(s string, offset int) (int, int) {
	return moveOver(s[:offset], 1, 1)
}
