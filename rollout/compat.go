package rollout

import (
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// setCompatibleCondition records in status which fields of the spec serin
// accepts and ignores: Compatible=False with reason IgnoredFields and one
// "path: why" per field, or Compatible=True.
func setCompatibleCondition(st *v1alpha1.CanaryStatus, notes []v1alpha1.FieldNote, now time.Time) {
	cond := metav1.Condition{Type: v1alpha1.ConditionCompatible, Status: metav1.ConditionTrue, Reason: "AllFieldsHonoured",
		Message: "serin honours every field of the spec", ObservedGeneration: st.ObservedGeneration, LastTransitionTime: metav1.NewTime(now)}
	if len(notes) > 0 {
		lines := make([]string, 0, len(notes))
		for _, n := range notes {
			lines = append(lines, n.String())
		}
		cond.Status, cond.Reason = metav1.ConditionFalse, "IgnoredFields"
		cond.Message = "serin ignores: " + strings.Join(lines, "; ")
	}
	apimeta.SetStatusCondition(&st.Conditions, cond)
}
