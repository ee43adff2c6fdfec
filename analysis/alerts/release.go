package alerts

import (
	"fmt"
	"strconv"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// ReleaseMessage is the alert for a release event of c: text is the
// event's message, warning whether it is a warning. A warning of a failed
// release is an error, any other warning a warn, the rest info. The
// fields name the target Deployment, the canary weight and the failed
// checks. It is a pure function.
func ReleaseMessage(c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, text string, warning bool) Message {
	return Message{
		Name: c.Name, Namespace: c.Namespace, Phase: c.Status.Phase,
		Severity: releaseSeverity(c.Status.Phase, warning), Text: text,
		Fields: []Field{
			{Name: "Target", Value: fmt.Sprintf("Deployment/%s.%s", spec.TargetRef.Name, c.Namespace)},
			{Name: "Weight", Value: strconv.Itoa(int(c.Status.CanaryWeight))},
			{Name: "Failed checks", Value: strconv.Itoa(int(c.Status.FailedChecks))},
		},
	}
}

// releaseSeverity is the severity of a release event.
func releaseSeverity(phase v1alpha1.CanaryPhase, warning bool) v1alpha1.AlertSeverity {
	switch {
	case phase == v1alpha1.PhaseFailed && warning:
		return v1alpha1.SeverityError
	case warning:
		return v1alpha1.SeverityWarn
	default:
		return v1alpha1.SeverityInfo
	}
}
