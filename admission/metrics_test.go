package admission

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// TestMetrics checks the webhooks' series: a request count by webhook and
// result, and a duration histogram by webhook, under the names
// dashboards query.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := registeredOn(reg)
	v1, v2 := readFixture(t, fixtureV1), readFixture(t, fixtureV2)
	decodeResponse(t, serve(h[PathHoldDeployment], PathHoldDeployment, review(t, v1, v2)))
	decodeResponse(t, serve(h[PathHoldDeployment], PathHoldDeployment, review(t, v1, withLabel(t, v1))))
	decodeResponse(t, serve(h[PathValidateDeployment], PathValidateDeployment, review(t, v1, v2)))

	got := map[string]float64{}
	help := map[string]string{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		help[mf.GetName()] = mf.GetHelp()
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				got[key] = float64(h.GetSampleCount())
			} else {
				got[key] = m.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"serin_admission_requests_total result=patched webhook=hold":                1,
		"serin_admission_requests_total result=allowed webhook=hold":                1,
		"serin_admission_requests_total result=allowed webhook=validate-deployment": 1,
		"serin_admission_duration_seconds webhook=hold":                             2,
		"serin_admission_duration_seconds webhook=validate-deployment":              1,
	}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	wantHelp := map[string]string{
		"serin_admission_requests_total":   "Admission requests handled, by webhook and result (allowed, patched, denied, errored).",
		"serin_admission_duration_seconds": "Time to answer an admission request, by webhook.",
	}
	for name, h := range wantHelp {
		if help[name] != h {
			t.Errorf("help of %s = %q, want %q", name, help[name], h)
		}
	}
}

// TestNilMetrics checks that handlers registered without metrics answer
// as usual.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	h := m.instrument("test", HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Errored(http.StatusBadRequest, errors.New("bad request"))
	}))
	if resp := h.Handle(context.Background(), admission.Request{}); resp.Allowed || resp.Result.Code != http.StatusBadRequest {
		t.Errorf("response %+v", resp)
	}
}
