package querytemplate

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		wantErr []string // substrings, all required; empty = valid
	}{
		{name: "flagger 404 template", query: `100 - sum(rate(istio_requests_total{reporter="destination",
  destination_workload_namespace="{{ namespace }}", destination_workload="{{ target }}", response_code!="404"}[{{ interval }}]))`},
		{name: "all built-ins quoted", query: `x{a="{{namespace}}",b='{{ canary }}',c="{{stable}}",d="{{ service }}",e="{{interval}}"}`},
		{name: "user variable anywhere", query: `x{a="{{ variables.team-name }}"} > {{ variables.limit }}`},
		{name: "raw string", query: "x{a=`{{ namespace }}`}"},
		{name: "comment", query: "x # {{ namespace }}\n"},
		{name: "unknown variable", query: `x{a="{{ deployment }}"}`, wantErr: []string{`variable "deployment"`, "unknown variable", "line 1 column 6"}},
		{name: "built-in outside quotes", query: `{{ namespace }}_requests_total`, wantErr: []string{`variable "namespace"`, "inside a quoted string"}},
		{name: "unterminated placeholder", query: `x{a="{{ namespace"}`, wantErr: []string{`without a closing "}}"`}},
		{name: "go template syntax", query: `x{a="{{ .Namespace }}"}`, wantErr: []string{"not a variable name"}},
		{name: "pipeline", query: `x{a="{{ namespace | printf }}"}`, wantErr: []string{"not a variable name"}},
		{name: "empty user variable", query: `x{a="{{ variables. }}"}`, wantErr: []string{"not a variable name"}},
		{name: "unterminated string", query: `x{a="{{ namespace }}}`, wantErr: []string{"unterminated string"}},
		{name: "several errors reported", query: "x{a=\"{{ foo }}\"}\n + {{ bar }}", wantErr: []string{`"foo"`, `"bar"`, "line 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.query)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error with %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateErrorType(t *testing.T) {
	err := Validate(`x{a="{{ nope }}"}`)
	var te *Error
	if !errors.As(err, &te) || te.Variable != "nope" {
		t.Fatalf("want *Error for variable nope, got %#v", err)
	}
}

func values() Values {
	return Values{Name: "podinfo", Namespace: "test", Target: "podinfo-canary", Canary: "podinfo-canary",
		Stable: "podinfo", Service: "podinfo", Interval: time.Minute}
}

func TestRender(t *testing.T) {
	v := values()
	v.Variables = map[string]string{"code": "404", "limit": "0.5", "window": "5m"}
	got, err := Render(`sum(rate(x{ns="{{ namespace }}",w=~"{{ target }}|{{stable}}",c!='{{ variables.code }}'}[{{ interval }}] offset {{ variables.window }})) > {{ variables.limit }}`, v)
	if err != nil {
		t.Fatal(err)
	}
	want := `sum(rate(x{ns="test",w=~"podinfo-canary|podinfo",c!='404'}[1m] offset 5m)) > 0.5`
	if got != want {
		t.Fatalf("Render() =\n%s\nwant\n%s", got, want)
	}
}

// Hostile values must stay inside their strings: the rendered string reads
// back (with Go's unquoting, which PromQL uses) as exactly the value, and
// the query outside the string is unchanged.
func TestRenderEscapesHostileValues(t *testing.T) {
	hostile := []string{
		`"}`,
		`\`,
		`a\"} or vector(1) #`,
		"line\nbreak\r\t",
		`'`,
		"\x00\x1b\x7f",
		"ünïcödé ✓",
		"bad\xffutf8",
		`{{ namespace }}`,
	}
	for _, h := range hostile {
		for _, quote := range []string{`"`, `'`} {
			v := values()
			v.Variables = map[string]string{"x": h}
			query := `m{l=` + quote + `{{ variables.x }}` + quote + `} + 1`
			got, err := Render(query, v)
			if err != nil {
				t.Fatalf("Render(%q) error %v", h, err)
			}
			if !strings.HasPrefix(got, "m{l="+quote) || !strings.HasSuffix(got, quote+"} + 1") {
				t.Fatalf("structure changed: %q", got)
			}
			lit := strings.TrimSuffix(strings.TrimPrefix(got, "m{l="), "} + 1")
			if quote == `'` { // PromQL swaps single quotes for double before unquoting
				body := lit[1 : len(lit)-1]
				body = strings.ReplaceAll(body, `\'`, `'`)
				body = strings.ReplaceAll(body, `"`, `\"`)
				lit = `"` + body + `"`
			}
			back, err := strconv.Unquote(lit)
			if err != nil {
				t.Fatalf("rendered %q does not unquote: %v", lit, err)
			}
			if want := strings.ToValidUTF8(h, "\uFFFD"); back != want {
				t.Fatalf("round trip of %q = %q", want, back)
			}
			// The rendered query must parse into the same single placeholder-free structure.
			tpl, err := Parse(got)
			if err != nil {
				t.Fatalf("rendered query %q no longer scans: %v", got, err)
			}
			for _, p := range tpl.Placeholders() {
				if p.Context != DoubleQuoted && p.Context != SingleQuoted {
					t.Fatalf("value leaked out of its string: %q", got)
				}
			}
		}
	}
}

func TestRenderRefusesUnsafeValues(t *testing.T) {
	tests := []struct {
		name  string
		query string
		value string
		want  string
	}{
		{"code context not a number", `x > {{ variables.v }}`, `1 or vector(1)`, "number or a duration"},
		{"code context keyword", `x {{ variables.v }} y`, `or`, "number or a duration"},
		{"raw string with backtick", "x{a=`{{ variables.v }}`}", "a`} or y{b=`", "backtick"},
		{"unset variable", `x{a="{{ variables.other }}"}`, "", `"variables.other"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := values()
			v.Variables = map[string]string{"v": tt.value}
			_, err := Render(tt.query, v)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render() error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRenderComment(t *testing.T) {
	v := values()
	v.Variables = map[string]string{"v": "a\nvector(1) or"}
	got, err := Render("x # {{ variables.v }}\n+ 1", v)
	if err != nil {
		t.Fatal(err)
	}
	if got != "x # a vector(1) or\n+ 1" {
		t.Fatalf("got %q", got)
	}
}

func TestDurations(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{{"1m", time.Minute}, {"1h30m", 90 * time.Minute}, {"1d", 24 * time.Hour}, {"500ms", 500 * time.Millisecond}, {"90s", 90 * time.Second}, {"1.5m", 90 * time.Second}} {
		got, err := ParseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "m", "1x", "-1m"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "m", "1x", "-1m", "1m1h", "1.5m"} {
		if ValidDuration(bad) {
			t.Errorf("ValidDuration(%q) = true", bad)
		}
	}
	for d, want := range map[time.Duration]string{time.Hour: "1h", 5 * time.Minute: "5m", 90 * time.Second: "90s", 1500 * time.Millisecond: "1500ms", 0: "1ms"} {
		if got := FormatDuration(d); got != want || !ValidDuration(got) {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestTextDialect(t *testing.T) {
	v := values()
	v.Variables = map[string]string{"app": "web.v2", "q": `a"b\c'd`}
	query := `sumSeries(stats.{{ target }}.{{ variables.app }}.count) # {{ namespace }}` + "\n" +
		`x = "{{ variables.q }}" and y = '{{ variables.q }}' from -{{ interval }}`
	if err := ValidateDialect(query, Text); err != nil {
		t.Fatalf("ValidateDialect(Text) = %v", err)
	}
	if err := Validate(query); err == nil {
		t.Fatal("Validate(PromQL) accepted a built-in outside quotes")
	}
	got, err := RenderDialect(query, v, Text)
	if err != nil {
		t.Fatal(err)
	}
	want := `sumSeries(stats.podinfo-canary.web.v2.count) # test` + "\n" + `x = "a\"b\\c'd" and y = 'a"b\\c\'d' from -1m`
	if got != want {
		t.Fatalf("RenderDialect() =\n%s\nwant\n%s", got, want)
	}
}

func TestTextDialectRefusesUnsafeValues(t *testing.T) {
	for _, tc := range []struct{ query, value string }{
		{`a.{{ variables.x }}.b`, "x,y"},
		{`a.{{ variables.x }}.b`, "x)|y"},
		{`a.{{ variables.x }}.b`, "-x"},
		{`a.{{ variables.x }}.b`, "x y"},
		{`"{{ variables.x }}"`, "line\nbreak"},
		{`'{{ variables.x }}'`, "nul\x00"},
		{`"{{ variables.x }}"`, "bad\xffutf8"},
	} {
		v := values()
		v.Variables = map[string]string{"x": tc.value}
		if got, err := RenderDialect(tc.query, v, Text); err == nil {
			t.Errorf("RenderDialect(%q, x=%q) = %q, want an error", tc.query, tc.value, got)
		}
	}
}

// TestTextDialectLineEnds: in Text, an apostrophe or backtick in a comment
// is no error, and what follows on later lines is code again, where only
// plain values go.
func TestTextDialectLineEnds(t *testing.T) {
	query := "// don't use `raw\nfrom(bucket: \"b\") |> filter(fn: (r) => r.app == \"{{ target }}\")\n|> set(key: \"x\", value: {{ variables.v }})"
	if err := ValidateDialect(query, Text); err != nil {
		t.Fatalf("ValidateDialect(Text) = %v", err)
	}
	if err := Validate(query); err == nil {
		t.Fatal("Validate(PromQL) accepted a string across lines")
	}
	v := values()
	v.Variables = map[string]string{"v": `1") |> drop(`}
	if got, err := RenderDialect(query, v, Text); err == nil {
		t.Fatalf("RenderDialect() = %q, want the unsafe value refused in code", got)
	}
	v.Variables["v"] = "42"
	got, err := RenderDialect(query, v, Text)
	if err != nil || !strings.Contains(got, `r.app == "podinfo-canary"`) || !strings.HasSuffix(got, "value: 42)") {
		t.Fatalf("RenderDialect() = %q, %v", got, err)
	}
}

// TestIngress: Flagger's {{ ingress }} is the Canary's ingressRef name,
// and has no value without one.
func TestIngress(t *testing.T) {
	const query = `SELECT count(*) FROM Metric WHERE ingress = '{{ ingress }}'`
	v := values()
	if _, err := RenderDialect(query, v, Text); err == nil || !strings.Contains(err.Error(), "no spec.ingressRef") {
		t.Fatalf("RenderDialect() without ingress error = %v", err)
	}
	v.Ingress = "podinfo"
	if got, err := RenderDialect(query, v, Text); err != nil || got != `SELECT count(*) FROM Metric WHERE ingress = 'podinfo'` {
		t.Fatalf("RenderDialect() = %q, %v", got, err)
	}
}
