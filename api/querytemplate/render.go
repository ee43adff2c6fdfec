package querytemplate

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Values are what the variables of a query stand for.
type Values struct {
	Name      string
	Namespace string
	// Target is the workload under analysis: the canary copy, as in
	// Flagger, whose target is its canary, so a query written for Flagger
	// keeps measuring the new version.
	Target  string
	Canary  string
	Stable  string
	Service string
	// Ingress is the Canary's spec.ingressRef name ("" when it has none:
	// then {{ ingress }} has no value).
	Ingress string
	// Interval is the query window; it is written as a Prometheus duration,
	// or with FormatInterval when set.
	Interval time.Duration
	// FormatInterval, when set, writes Interval (for languages whose
	// durations differ from Prometheus's, such as Graphite's "5min").
	FormatInterval func(time.Duration) string
	// Variables are the Canary metric's templateVariables.
	Variables map[string]string
}

func (v Values) lookup(name string) (string, bool) {
	if user, ok := strings.CutPrefix(name, variablesPrefix); ok {
		s, ok := v.Variables[user]
		return s, ok
	}
	switch name {
	case varName:
		return v.Name, true
	case varNamespace:
		return v.Namespace, true
	case varTarget:
		return v.Target, true
	case varCanary:
		return v.Canary, true
	case varStable:
		return v.Stable, true
	case varIngress:
		return v.Ingress, v.Ingress != ""
	case varService:
		return v.Service, true
	case varInterval:
		if v.Interval <= 0 {
			return "", false
		}
		if v.FormatInterval != nil {
			return v.FormatInterval(v.Interval), true
		}
		return FormatDuration(v.Interval), true
	}
	return "", false
}

// Render parses and renders a PromQL query in one go.
func Render(query string, v Values) (string, error) { return RenderDialect(query, v, PromQL) }

// RenderDialect parses and renders a query in dialect d in one go.
func RenderDialect(query string, v Values, d Dialect) (string, error) {
	t, err := ParseDialect(query, d)
	if err != nil {
		return "", err
	}
	return t.Render(v)
}

// Render writes the query with every placeholder replaced by its value,
// escaped for its context. It fails, naming the variable, when a variable
// is unknown or unset, or when a value cannot be written safely where it
// sits.
func (t *Template) Render(v Values) (string, error) {
	var b strings.Builder
	var errs []error
	last := 0
	for _, p := range t.placeholders {
		b.WriteString(t.query[last:p.Start])
		last = p.End
		if err := checkPlacement(p, t.dialect); err != nil {
			errs = append(errs, err)
			continue
		}
		val, ok := v.lookup(p.Variable)
		if !ok {
			reason := "has no value (set it in the metric's templateVariables)"
			if p.Variable == varIngress {
				reason = "has no value: the Canary has no spec.ingressRef"
			}
			errs = append(errs, &Error{Variable: p.Variable, Line: p.Line, Col: p.Col, Reason: reason})
			continue
		}
		escapeFn := escape
		if t.dialect == Text {
			escapeFn = escapeText
		}
		out, err := escapeFn(val, p.Context)
		if err != nil {
			errs = append(errs, &Error{Variable: p.Variable, Line: p.Line, Col: p.Col, Reason: err.Error()})
			continue
		}
		b.WriteString(out)
	}
	b.WriteString(t.query[last:])
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return b.String(), nil
}

var numberRE = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// escape writes a value for its context.
func escape(val string, c Context) (string, error) {
	switch c {
	case DoubleQuoted:
		return quoteBody(val, '"'), nil
	case SingleQuoted:
		return quoteBody(val, '\''), nil
	case RawString:
		if strings.ContainsRune(val, '`') || !utf8.ValidString(val) {
			return "", errors.New("value with a backtick or invalid UTF-8 cannot go in a raw string")
		}
		return val, nil
	case Comment:
		return strings.NewReplacer("\r", " ", "\n", " ").Replace(val), nil
	default:
		if numberRE.MatchString(val) || ValidDuration(val) {
			return val, nil
		}
		return "", fmt.Errorf("value %q outside quotes must be a number or a duration", truncate(val, 40))
	}
}

// plainName is what a Text value may be outside strings.
var plainName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// escapeText writes a value for its context in the Text dialect.
func escapeText(val string, c Context) (string, error) {
	switch c {
	case DoubleQuoted, SingleQuoted:
		if !utf8.ValidString(val) || strings.ContainsFunc(val, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", errors.New("value with control characters or invalid UTF-8 cannot go in a string")
		}
		quote := `"`
		if c == SingleQuoted {
			quote = "'"
		}
		return strings.NewReplacer(`\`, `\\`, quote, `\`+quote).Replace(val), nil
	case RawString:
		return escape(val, c)
	default:
		if numberRE.MatchString(val) || ValidDuration(val) || plainName.MatchString(val) {
			return val, nil
		}
		return "", fmt.Errorf("value %q outside quotes must be a number, a duration or a plain name (letters, digits, '_', '-', '.')", truncate(val, 40))
	}
}

// quoteBody escapes s as the body of a PromQL string delimited by quote.
// PromQL unquotes strings with Go's rules, so the output, wrapped in quote,
// reads back as s (invalid UTF-8 becomes U+FFFD).
func quoteBody(s string, quote byte) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(quote):
			b.WriteByte('\\')
			b.WriteByte(quote)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == 0x2028 || r == 0x2029 || r == 0xFEFF:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

var durationRE = regexp.MustCompile(`^([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$`)

// ValidDuration reports whether s is a Prometheus duration such as "30s",
// "5m" or "1h30m".
func ValidDuration(s string) bool {
	return s != "" && durationRE.MatchString(s)
}

// ParseDuration reads a Prometheus duration ("1m", "1h30m", "1d") or, failing
// that, a Go duration ("90s", "1.5m").
func ParseDuration(s string) (time.Duration, error) {
	if ValidDuration(s) {
		m := durationRE.FindStringSubmatch(s)
		units := []time.Duration{365 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour, time.Hour, time.Minute, time.Second, time.Millisecond}
		var d time.Duration
		for i, part := range m[1:] {
			if part == "" {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimRight(part, "ywdhms"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("duration %q: %w", s, err)
			}
			d += time.Duration(n) * units[i]
		}
		return d, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("duration %q is neither a Prometheus nor a Go duration", s)
	}
	return d, nil
}

// FormatDuration writes d as a Prometheus duration in a single unit, the
// largest that divides it: "1h", "5m", "90s", "1500ms". Below a
// millisecond it writes "1ms".
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return "1ms"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
}

// QuoteString writes s as a double-quoted PromQL string literal.
func QuoteString(s string) string { return `"` + quoteBody(s, '"') + `"` }
