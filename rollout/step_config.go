package rollout

import (
	"fmt"
	"strings"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Config releases. The content revisions of the ConfigMaps and Secrets a
// template references live in its serin.dev/config annotation, so a
// change of content is a change of template: Step writes the annotation
// (SetConfig), the Deployment is held on the new revision, and the release
// runs as for any new template. Pods read immutable snapshots of the
// revisions their annotation names (the pod webhook points them there), so
// the stable pods keep their content through the release and after a
// rollback.

// configWant is the annotation the template should carry, and whether it
// differs from the one it carries (false when config is not tracked).
func (s *stepper) configWant() (string, bool) {
	c := s.in.Obs.Config
	if !c.Known {
		return "", false
	}
	want := c.Want()
	return want, want != s.in.Obs.Target.Config
}

// followConfig writes changed content revisions into the template, held
// for a release in the same write; true when it did (the step stops: the
// release starts, or restarts, on the new revision).
func (s *stepper) followConfig() bool {
	want, stale := s.configWant()
	if !stale {
		return false
	}
	s.actions = append(s.actions, SetConfig{Value: want, Stable: s.st.StableRevision})
	s.st.Message = fmt.Sprintf("config changed (%s): holding the new revision for a release",
		strings.Join(v1alpha1.ChangedConfig(s.in.Obs.Target.Config, want), ", "))
	s.after(pollTraffic)
	return true
}

// recordAdoption records as stable a template serin moved onto snapshots
// (adoptConfig): it differs from the stable revision only by the config
// annotation serin added, and was rolled out as stable.
func (s *stepper) recordAdoption() {
	t := s.in.Obs.Target
	if t.Config != "" && t.TemplateHash != s.st.StableRevision && t.BaseHash == s.st.StableRevision && t.Stable == t.TemplateHash {
		s.st.StableRevision = t.TemplateHash
		s.st.StableConfig = t.Config
	}
}

// adoptConfig moves the pods of a template on the stable revision that
// read tracked objects directly onto snapshots of the same content, with
// a rolling restart and no release: from then on a change of content
// reaches only the pods of a new revision. True when it acted.
func (s *stepper) adoptConfig() bool {
	t := s.in.Obs.Target
	if t.TemplateHash != s.st.StableRevision || t.Config != "" || t.Paused {
		return false
	}
	want, stale := s.configWant()
	if !stale {
		return false
	}
	s.actions = append(s.actions, SetConfig{Value: want, Adopt: true})
	var names []string
	for _, r := range s.in.Obs.Config.Tracked {
		names = append(names, r.String())
	}
	s.event("Synced", "TrackConfig", "Tracking %s of %s: its pods restart onto snapshots of the same content (no release)", strings.Join(names, ", "), s.target())
	s.after(pollRollout)
	return true
}

// configNote names the tracked objects whose content the template changes
// against the stable revision, for events (empty when none).
func (s *stepper) configNote() string {
	changed := v1alpha1.ChangedConfig(s.st.StableConfig, s.in.Obs.Target.Config)
	if len(changed) == 0 {
		return ""
	}
	return " (config changed: " + strings.Join(changed, ", ") + ")"
}

// trackedConfig records in status what serin tracks now.
func (s *stepper) trackedConfig() {
	if c := s.in.Obs.Config; c.Known {
		s.st.TrackedConfig = nil
		if len(c.Tracked) > 0 {
			s.st.TrackedConfig = c.Tracked
		}
	}
}
