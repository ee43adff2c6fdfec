package rollout

import (
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func TestCompatibleCondition(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var st v1alpha1.CanaryStatus
	spec := v1alpha1.CanarySpec{Provider: "nginx", Service: v1alpha1.CanaryService{BackendTimeout: "5s"}}
	setCompatibleCondition(&st, v1alpha1.Ignored(&spec), now)
	c := apimeta.FindStatusCondition(st.Conditions, v1alpha1.ConditionCompatible)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "IgnoredFields" ||
		!strings.Contains(c.Message, "spec.provider=nginx") || !strings.Contains(c.Message, "spec.service.backendTimeout") {
		t.Fatalf("condition: %+v", c)
	}
	setCompatibleCondition(&st, v1alpha1.Ignored(&v1alpha1.CanarySpec{Provider: "istio"}), now.Add(time.Minute))
	c = apimeta.FindStatusCondition(st.Conditions, v1alpha1.ConditionCompatible)
	if c == nil || c.Status != metav1.ConditionTrue || !c.LastTransitionTime.Time.Equal(now.Add(time.Minute)) {
		t.Fatalf("condition after fix: %+v", c)
	}
}
