package alerts

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func TestReleaseMessage(t *testing.T) {
	canary := func(phase v1alpha1.CanaryPhase) *v1alpha1.Canary {
		return &v1alpha1.Canary{
			ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
			Status:     v1alpha1.CanaryStatus{Phase: phase, CanaryWeight: 20, FailedChecks: 2},
		}
	}
	spec := &v1alpha1.CanarySpec{TargetRef: v1alpha1.LocalObjectReference{Name: "podinfo-app"}}
	fields := []Field{
		{Name: "Target", Value: "Deployment/podinfo-app.test"},
		{Name: "Weight", Value: "20"},
		{Name: "Failed checks", Value: "2"},
	}
	for _, tc := range []struct {
		name     string
		phase    v1alpha1.CanaryPhase
		warning  bool
		severity v1alpha1.AlertSeverity
	}{
		{"progress", v1alpha1.PhaseProgressing, false, v1alpha1.SeverityInfo},
		{"halt", v1alpha1.PhaseProgressing, true, v1alpha1.SeverityWarn},
		{"rolled back", v1alpha1.PhaseFailed, true, v1alpha1.SeverityError},
		{"failed, not a warning", v1alpha1.PhaseFailed, false, v1alpha1.SeverityInfo},
		{"promoted", v1alpha1.PhaseSucceeded, false, v1alpha1.SeverityInfo},
		{"warning after success", v1alpha1.PhaseSucceeded, true, v1alpha1.SeverityWarn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ReleaseMessage(canary(tc.phase), spec, "Advance podinfo.test canary weight 20", tc.warning)
			want := Message{
				Name: "podinfo", Namespace: "test", Phase: tc.phase, Severity: tc.severity,
				Text: "Advance podinfo.test canary weight 20", Fields: fields,
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}
