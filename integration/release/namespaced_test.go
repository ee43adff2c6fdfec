package release

import (
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

// TestNamespacedInstall installs serin for one namespace (the chart's
// watchNamespaces, --watch-namespaces): serin runs as its service account
// with Roles in that namespace only, so any informer it started
// cluster-wide would be forbidden. A release there reaches the middle
// (canary copy, Services, traffic applied); a Deployment opted in in
// another namespace is never seen, by the webhooks or the engine.
func TestNamespacedInstall(t *testing.T) {
	c := cluster.Get(t)
	watched, other := c.Namespace(t), c.Namespace(t)
	s := harness.Install(t, c, harness.Options{ExtraArgs: []string{"--watch-namespaces=" + watched}})
	e := newEnvIn(t, 2*time.Minute, s, watched)
	outside := newEnvIn(t, 2*time.Minute, s, other)
	outside.apply(app{Version: "12.0.0", Annotations: annotationKnobs}.deployment(other))

	w := e.watchCanary()
	e.apply(app{Version: "12.0.0", Annotations: annotationKnobs}.deployment(watched))
	e.waitFor(w, 0, 30*time.Second, "canary made from the annotations", phaseIs(v1alpha1.PhaseInitialized))
	conn := harness.XDSClient(t, s.XDSAddress(), "namespaced", "podinfo."+watched+":9999")
	harness.Send(e.ctx, conn, 10)
	from := w.len()
	e.apply(app{Version: "12.0.1", Annotations: annotationKnobs}.deployment(watched))
	e.waitFor(w, from, 30*time.Second, "weight 10", func(r record) bool {
		return r.Phase == v1alpha1.PhaseProgressing && r.Weight == 10 && r.appliedWeight()
	})
	if e.deploymentObj("podinfo-canary") == nil || e.service("podinfo-canary") == nil || e.service("podinfo-primary") == nil {
		t.Fatal("no canary copy or Services in the middle of the release")
	}

	// The other namespace's Deployment was applied before the release
	// started: by now serin would have held it and made its Canary.
	if out := outside.kubectl("get", "canaries", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("serin made a Canary outside its namespaces: %s", out)
	}
	d := outside.deploymentObj("podinfo")
	for k := range d.Annotations {
		if _, knob := annotationKnobs[k]; strings.HasPrefix(k, "serin.dev/") && k != v1alpha1.AnnotationCanary && !knob {
			t.Errorf("serin's webhook touched a Deployment outside its namespaces: %s=%s", k, d.Annotations[k])
		}
	}
	if d.Spec.Paused {
		t.Error("serin paused a Deployment outside its namespaces")
	}
	if log := strings.ToLower(s.Log()); strings.Contains(log, "forbidden") {
		i := strings.Index(log, "forbidden")
		t.Errorf("serin was refused something: ...%s...", log[max(0, i-300):min(len(log), i+200)])
	}
}
