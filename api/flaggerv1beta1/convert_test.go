package flaggerv1beta1

import (
	"encoding/json"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/randfill"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func filler(seed int64) *randfill.Filler {
	return randfill.NewWithSeed(seed).NilChance(0.2).NumElements(1, 2).Funcs(
		func(p *float64, c randfill.Continue) { *p = float64(c.Int31n(1000)) / 4 },
	)
}

// TestSpecRoundTrip: Flagger → serin → Flagger gives back the spec, and
// the serin spec's JSON is the Flagger spec's JSON (same field names).
func TestSpecRoundTrip(t *testing.T) {
	f := filler(7)
	for range 300 {
		var in CanarySpec
		f.Fill(&in)
		s := SpecToSerin(&in)
		back := SpecFromSerin(&s)
		if !equality.Semantic.DeepEqual(&in, &back) {
			t.Fatalf("round trip changed the spec:\n%+v\n%+v", in, back)
		}
		if a, b := asTree(t, &in), asTree(t, &s); !equality.Semantic.DeepEqual(a, b) {
			t.Fatalf("JSON differs:\n%v\n%v", a, b)
		}
	}
}

// TestSerinSpecRoundTrip: serin → Flagger → serin keeps everything but
// serin's own fields.
func TestSerinSpecRoundTrip(t *testing.T) {
	f := filler(8)
	for range 300 {
		var in v1alpha1.CanarySpec
		f.Fill(&in)
		in.CanaryReplicas, in.Judge, in.LoadReports, in.MinProxies = nil, nil, nil, nil
		fl := SpecFromSerin(&in)
		back := SpecToSerin(&fl)
		if !equality.Semantic.DeepEqual(&in, &back) {
			t.Fatalf("round trip changed the spec:\n%+v\n%+v", in, back)
		}
	}
}

func TestOtherKindsRoundTrip(t *testing.T) {
	f := filler(9)
	for range 100 {
		var mt MetricTemplate
		var ap AlertProvider
		f.Fill(&mt.ObjectMeta.Labels)
		f.Fill(&mt.Spec)
		f.Fill(&ap.Spec)
		mt.Name, ap.Name = "x", "y"
		if back := MetricTemplateFromSerin(MetricTemplateToSerin(&mt)); !equality.Semantic.DeepEqual(mt.Spec, back.Spec) || back.Name != "x" ||
			!equality.Semantic.DeepEqual(mt.Labels, back.Labels) {
			t.Fatalf("MetricTemplate round trip: %+v %+v", mt, back)
		}
		if back := AlertProviderFromSerin(AlertProviderToSerin(&ap)); !equality.Semantic.DeepEqual(ap.Spec, back.Spec) || back.Name != "y" {
			t.Fatalf("AlertProvider round trip: %+v %+v", ap, back)
		}
	}
}

func TestToSerin(t *testing.T) {
	c := &Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test", Labels: map[string]string{"a": "b"},
		Annotations: map[string]string{lastApplied: "{}", "serin.dev/paused": "true"}},
		Spec: CanarySpec{Provider: "istio", TargetRef: v1alpha1.LocalObjectReference{Name: "podinfo"}}}
	s := ToSerin(c)
	if s.Name != "podinfo" || s.Namespace != "test" || s.Labels["a"] != "b" || s.Spec.TargetRef.Name != "podinfo" ||
		s.APIVersion != "serin.dev/v1alpha1" {
		t.Fatalf("ToSerin: %+v", s)
	}
	if _, kept := s.Annotations[lastApplied]; kept || s.Annotations["serin.dev/paused"] != "true" {
		t.Fatalf("annotations %v", s.Annotations)
	}
	s.Labels["a"] = "changed"
	if c.Labels["a"] != "b" {
		t.Fatal("ToSerin shares the labels map")
	}
}

func TestStatusFromSerin(t *testing.T) {
	now := metav1.Now()
	st := v1alpha1.CanaryStatus{Phase: v1alpha1.PhaseProgressing, CanaryWeight: 20, FailedChecks: 1, Iterations: 2,
		StableRevision: "abc", CanaryRevision: "def", LastTransitionTime: now,
		Conditions: []metav1.Condition{
			{Type: v1alpha1.ConditionTrafficApplied, Status: metav1.ConditionTrue, Reason: "Applied", LastTransitionTime: now},
			{Type: v1alpha1.ConditionPromoted, Status: metav1.ConditionFalse, Reason: "Progressing", Message: "m", LastTransitionTime: now},
		}}
	got := StatusFromSerin(&st)
	if got.Phase != v1alpha1.PhaseProgressing || got.CanaryWeight != 20 || got.FailedChecks != 1 || got.Iterations != 2 ||
		got.LastAppliedSpec != "def" || got.LastPromotedSpec != "abc" || !got.LastTransitionTime.Equal(&now) {
		t.Fatalf("status: %+v", got)
	}
	if len(got.Conditions) != 2 || got.Conditions[0].Type != ConditionPromoted || got.Conditions[0].Status != metav1.ConditionFalse ||
		got.Conditions[0].Reason != "Progressing" || got.Conditions[0].Message != "m" {
		t.Fatalf("conditions: %+v", got.Conditions)
	}
	st.CanaryRevision = ""
	if got := StatusFromSerin(&st); got.LastAppliedSpec != "abc" {
		t.Fatalf("between releases lastAppliedSpec = %q, want the stable revision", got.LastAppliedSpec)
	}
}

// TestCompatManifestsDecode reads the Flagger-shaped Canaries of the
// end-to-end suite strictly as flagger.app objects.
func TestCompatManifestsDecode(t *testing.T) {
	for _, f := range []string{"istio", "gatewayapi", "linkerd", "kubernetes"} {
		b, err := os.ReadFile("../../integration/compat/testdata/" + f + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		var c Canary
		if err := yaml.UnmarshalStrict(b, &c); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func asTree(t *testing.T, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
