package v1alpha1

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/randfill"
)

// flaggerPaths reads testdata/flagger-v1beta1-paths.txt: Flagger's
// published field paths, under "# <plural>.flagger.app" headings, keyed
// as in Compat.
func flaggerPaths(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("testdata/flagger-v1beta1-paths.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kind string
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "# "):
			kind, _, _ = strings.Cut(strings.TrimPrefix(line, "# "), ".")
		default:
			out = append(out, kind+":"+line)
		}
	}
	if len(out) < 200 {
		t.Fatalf("read %d paths, want Flagger's full list", len(out))
	}
	return out
}

func TestCompatCoversFlaggerSchema(t *testing.T) {
	paths := flaggerPaths(t)
	for _, p := range paths {
		st, ok := Compat[p]
		if !ok {
			t.Errorf("%s: missing from Compat", p)
			continue
		}
		if !st.Honoured && st.Reason == "" {
			t.Errorf("%s: ignored without a reason", p)
		}
		// The Compatible condition separates its notes with "; ".
		if strings.Contains(st.Reason, ";") {
			t.Errorf("%s: reason %q has a semicolon", p, st.Reason)
		}
	}
	for p := range Compat {
		if !slices.Contains(paths, p) {
			t.Errorf("%s: in Compat but not in Flagger's schema", p)
		}
	}
}

// TestGoTypesHaveFlaggerFields finds every Flagger path in serin's Go
// types by JSON name, so the generated CRD schema accepts it.
func TestGoTypesHaveFlaggerFields(t *testing.T) {
	roots := map[string]reflect.Type{
		"canaries":        reflect.TypeOf(Canary{}),
		"metrictemplates": reflect.TypeOf(MetricTemplate{}),
		"alertproviders":  reflect.TypeOf(AlertProvider{}),
	}
	for _, p := range flaggerPaths(t) {
		kind, path, _ := strings.Cut(p, ":")
		if err := findJSONPath(roots[kind], strings.Split(path, ".")); err != "" {
			t.Errorf("%s: %s", p, err)
		}
	}
}

func findJSONPath(t reflect.Type, parts []string) string {
	for _, part := range parts {
		name, list := strings.CutSuffix(part, "[]")
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() == reflect.Map {
			t = t.Elem()
			continue
		}
		f, ok := jsonField(t, name)
		if !ok {
			return "no field " + name + " in " + t.String()
		}
		t = f.Type
		if list {
			if t.Kind() != reflect.Slice {
				return name + " is not a list"
			}
			t = t.Elem()
		}
	}
	return ""
}

func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name {
			return f, true
		}
		if tag == "" && f.Anonymous {
			if g, ok := jsonField(f.Type, name); ok {
				return g, true
			}
		}
	}
	return reflect.StructField{}, false
}

// TestCanarySpecRoundTrip fills specs at random, writes them as JSON and
// reads them back strictly: every field survives under its JSON name.
func TestCanarySpecRoundTrip(t *testing.T) {
	f := randfill.NewWithSeed(12).NilChance(0.2).NumElements(1, 2).Funcs(
		func(p *float64, c randfill.Continue) { *p = float64(c.Int31n(1000)) / 4 },
	)
	for range 300 {
		var in CanarySpec
		f.Fill(&in)
		raw, err := json.Marshal(&in)
		if err != nil {
			t.Fatal(err)
		}
		var out CanarySpec
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out); err != nil {
			t.Fatalf("strict decode: %v\n%s", err, raw)
		}
		again, _ := json.Marshal(&out)
		if !bytes.Equal(raw, again) {
			t.Fatalf("round trip changed the spec:\n%s\n%s", raw, again)
		}
		notes := Ignored(&out)
		if !sort.SliceIsSorted(notes, func(i, j int) bool { return notes[i].Path+notes[i].Value < notes[j].Path+notes[j].Value }) {
			t.Fatalf("notes not sorted: %v", notes)
		}
		if !equality.Semantic.DeepEqual(notes, Ignored(&out)) {
			t.Fatal("Ignored is not deterministic")
		}
	}
}

func TestIgnored(t *testing.T) {
	yes := true
	s := CanarySpec{
		Provider:   "nginx",
		IngressRef: &ExternalObjectReference{Kind: "Ingress", Name: "web"},
		Service: CanaryService{
			Port: 80, Hosts: []string{"app.example.com"}, PortDiscovery: true,
			Match:         []HTTPMatchRequest{{URI: &StringMatch{Prefix: "/"}, Authority: &StringMatch{Exact: "a"}}},
			CorsPolicy:    &CorsPolicy{AllowCredentials: &yes, AllowOrigins: []OriginMatch{{Exact: "x"}}},
			GatewayRefs:   []GatewayRef{{Name: "gw"}, {Name: "gw2"}},
			TrafficPolicy: &TrafficPolicy{TLS: &TLSSettings{Mode: TLSIstioMutual}},
			Apex:          &CustomMetadata{Labels: map[string]string{"a": "b"}},
			Primary:       &CustomMetadata{Labels: map[string]string{"a": "b"}},
		},
		Analysis: &CanaryAnalysis{
			SessionAffinity: &SessionAffinity{CookieName: "c", PrimaryCookieName: "p", Secure: true},
			Metrics:         []CanaryMetric{{Name: MetricRequestSuccessRate, Threshold: ptr(99.0)}},
		},
	}
	var got []string
	for _, n := range Ignored(&s) {
		got = append(got, n.Path+"="+n.Value)
	}
	want := []string{
		"spec.ingressRef=",
		"spec.provider=nginx",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Ignored:\n got %q\nwant %q", got, want)
	}
	for _, honoured := range []Provider{"", "istio", "kubernetes", "gatewayapi:v1", "gatewayapi:v1beta1", "linkerd", "smi:v1alpha2"} {
		if n := Ignored(&CanarySpec{Provider: honoured}); len(n) != 0 {
			t.Errorf("provider %q: %v", honoured, n)
		}
	}
	if n := Ignored(&CanarySpec{Service: CanaryService{TrafficPolicy: &TrafficPolicy{TLS: &TLSSettings{Mode: "MUTUAL"}}}}); len(n) != 1 || n[0].String() != "spec.service.trafficPolicy.tls.mode=MUTUAL: "+whyTLS {
		t.Errorf("tls mode MUTUAL: %v", n)
	}
	lb := func(simple SimpleLB) []FieldNote {
		return Ignored(&CanarySpec{Service: CanaryService{TrafficPolicy: &TrafficPolicy{
			LoadBalancer:     &LoadBalancerSettings{Simple: simple},
			OutlierDetection: &OutlierDetection{Consecutive5xxErrors: ptr[int32](3), MinHealthPercent: ptr[int32](50)},
		}}})
	}
	if n := lb("PASSTHROUGH"); len(n) != 2 || n[0].Path != "spec.service.trafficPolicy.loadBalancer.simple" || n[0].Value != "PASSTHROUGH" ||
		n[1].Path != "spec.service.trafficPolicy.outlierDetection.minHealthPercent" {
		t.Errorf("PASSTHROUGH and minHealthPercent: %v", n)
	}
	if n := lb("LEAST_REQUEST"); len(n) != 1 {
		t.Errorf("LEAST_REQUEST: %v", n)
	}
}

func TestIgnoredOtherKinds(t *testing.T) {
	// Every field of a MetricTemplate is honoured.
	mt := IgnoredMetricTemplate(&MetricTemplateSpec{Provider: MetricProvider{Type: ProviderCloudWatch, Region: "eu-west-1",
		Address: "https://monitoring.example", InsecureSkipVerify: true, Headers: map[string][]string{"X": {"y"}}}, Query: "[]"})
	if len(mt) != 0 {
		t.Errorf("MetricTemplate: %v", mt)
	}
	// A Flagger provider type serin has no client for is named (admission
	// rejects it).
	mt = IgnoredMetricTemplate(&MetricTemplateSpec{Provider: MetricProvider{Type: "stackdriver"}, Query: "q"})
	if len(mt) != 1 || mt[0].String() != "spec.provider.type=stackdriver: rejected at admission: serin has no client for this provider" {
		t.Errorf("MetricTemplate: %v", mt)
	}
	ap := IgnoredAlertProvider(&AlertProviderSpec{Type: AlertSlack, Proxy: "http://proxy"})
	if len(ap) != 1 || ap[0].Path != "spec.proxy" {
		t.Errorf("AlertProvider: %v", ap)
	}
}

func TestLegacyThreshold(t *testing.T) {
	s := CanarySpec{TargetRef: LocalObjectReference{Name: "web"}, Analysis: &CanaryAnalysis{Metrics: []CanaryMetric{
		{Name: MetricRequestSuccessRate, Threshold: ptr(99.0)},
		{Name: MetricRequestDuration, Threshold: ptr(500.0)},
		{Name: "errors", Threshold: ptr(1.0), ThresholdRange: &CanaryThresholdRange{Max: ptr(5.0)}},
	}}}
	SetDefaults(&s)
	m := s.Analysis.Metrics
	if r := m[0].ThresholdRange; r == nil || r.Min == nil || *r.Min != 99 || r.Max != nil {
		t.Errorf("success rate: %+v", r)
	}
	if r := m[1].ThresholdRange; r == nil || r.Max == nil || *r.Max != 500 || r.Min != nil {
		t.Errorf("duration: %+v", r)
	}
	if r := m[2].ThresholdRange; *r.Max != 5 {
		t.Errorf("explicit range lost: %+v", r)
	}
}

// FuzzIgnored reads arbitrary specs: notes name only paths of Compat
// that serin ignores.
func FuzzIgnored(f *testing.F) {
	f.Add([]byte(`{"provider":"nginx","service":{"match":[{"authority":{"exact":"a"}}],"gatewayRefs":[{"name":"x"}]}}`))
	f.Add([]byte(`{"analysis":{"sessionAffinity":{"cookieName":"a","sameSite":"Lax"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s CanarySpec
		if json.Unmarshal(data, &s) != nil {
			return
		}
		for _, n := range Ignored(&s) {
			st, ok := Compat["canaries:"+n.Path]
			if !ok || (st.Honoured && len(st.HonouredValues) == 0) || n.Reason == "" {
				t.Fatalf("note %v: not an ignored path of Compat", n)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/flagger-compat.md from Compat")

// TestCompatDoc keeps docs/flagger-compat.md equal to Compat.
func TestCompatDoc(t *testing.T) {
	const path = "../../docs/flagger-compat.md"
	const head = "# Coming from Flagger: every field of flagger.app/v1beta1\n\n" +
		"Generated from `api/v1alpha1/compat.go` (`go test ./api/v1alpha1 -run TestCompatDoc -update-docs`).\n" +
		"serin accepts every field below under `serin.dev/v1alpha1` and, with the chart's `flagger.compat=true`,\n" +
		"under `flagger.app/v1beta1`. A field serin ignores is named, with the reason, in an admission warning\n" +
		"and in the Canary's `Compatible` condition (status False, reason IgnoredFields), in both groups.\n\n"
	want := head + CompatMarkdown()
	if *updateDocs {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is stale: run go test ./api/v1alpha1 -run TestCompatDoc -update-docs", path)
	}
}

func TestRouterFor(t *testing.T) {
	for _, tc := range []struct {
		p, def Provider
		want   Router
	}{
		{"", "", RouterXDS},
		{"istio", "", RouterXDS},
		{"kubernetes", "linkerd", RouterXDS},
		{"", "gatewayapi:v1", RouterGatewayAPI},
		{"gatewayapi:v1beta1", "", RouterGatewayAPI},
		{"linkerd", "gatewayapi:v1", RouterSMI},
		{"smi:v1alpha2", "", RouterSMI},
		{"", "linkerd", RouterSMI},
		{"nginx", "gatewayapi:v1", RouterXDS},
	} {
		if got := RouterFor(tc.p, tc.def); got != tc.want {
			t.Errorf("RouterFor(%q, %q) = %q, want %q", tc.p, tc.def, got, tc.want)
		}
	}
}
