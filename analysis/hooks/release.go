package hooks

import (
	"strings"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// ReleaseOf is the release of c the hooks are called for: its name,
// namespace, phase and the canary revision as the checksum.
func ReleaseOf(c *v1alpha1.Canary) Release {
	return Release{Name: c.Name, Namespace: c.Namespace, Phase: c.Status.Phase, Checksum: c.Status.CanaryRevision}
}

// Detail names the hooks that failed with their answers (or, with
// rollback, the hooks that asked for a rollback), joined by "; ". The
// release engine words the sentence around it ("Halt podinfo.test
// advancement: rollout hook failed smoke: server error (5xx)") and keeps
// it in status, so failures are told by class only.
func (o Outcome) Detail(rollback bool) string {
	var parts []string
	for _, r := range o.Results {
		switch {
		case rollback && r.OK:
			parts = append(parts, r.Hook)
		case !rollback && !r.OK:
			parts = append(parts, r.Hook+": "+r.Reason())
		}
	}
	return strings.Join(parts, "; ")
}
