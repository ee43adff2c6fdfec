package admission

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

const bypassCanary = `apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: web, namespace: %s}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  progressDeadlineSeconds: 60
  service: {port: 9999, appProtocol: grpc}
  analysis: {interval: 1s, threshold: 2, stepWeight: 10, maxWeight: 50}
`

// testWebhookDown stops serin: with the chart's failurePolicy Ignore a new
// revision is applied unheld. Started again, serin's engine holds it late
// and says so on the Canary.
func (e *env) testWebhookDown(t *testing.T) {
	ns := e.c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	v1 := deploy{ns: ns, name: "web", image: "6.0.0", annotations: enabled}
	if _, err := e.c.Kubectl(ctx, fmt.Sprintf(bypassCanary, ns)+"---\n"+v1.yaml(), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "canary initialized", func() error {
		out, err := e.c.Kubectl(ctx, "", "get", "canary", "web", "-n", ns, "-o", "jsonpath={.status.phase}")
		if err != nil || out != string(v1alpha1.PhaseInitialized) {
			return fmt.Errorf("phase %q %v", out, err)
		}
		return nil
	})
	d1 := e.get(t, ns, "web")
	if h := holdOf(d1); h != (hold{}) {
		t.Fatalf("v1 held: %+v", h)
	}

	// The premise: the chart's default lets Deployments through when
	// serin does not answer.
	mwc, err := e.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "serin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fp := mwc.Webhooks[0].FailurePolicy; mwc.Webhooks[0].Name != "hold.deployments.serin.dev" || fp == nil || *fp != admissionregistrationv1.Ignore {
		t.Fatalf("webhook %s has failurePolicy %v, want Ignore", mwc.Webhooks[0].Name, fp)
	}

	e.s.Stop()
	t.Cleanup(func() { _ = e.s.Start(context.Background()) }) // if the test stops before the restart
	v2 := v1
	v2.image = "6.0.1"
	start := time.Now()
	d2 := e.kubectlDeployment(t, v2.yaml(), "apply", "-o", "json", "-f", "-")
	t.Logf("FIGURE admission_webhook_down_apply_ms=%.0f", float64(time.Since(start).Microseconds())/1000)
	if image(d2) != "ghcr.io/stefanprodan/podinfo:6.0.1" {
		t.Fatalf("v2 not applied: %s", image(d2))
	}
	if h := holdOf(d2); h != (hold{}) {
		t.Fatalf("v2 held with serin stopped: %+v", h)
	}

	if err := e.s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	want := hold{Paused: true, HasCandidate: true, HasStable: true,
		Candidate: v1alpha1.TemplateHash(&d2.Spec.Template), Stable: v1alpha1.TemplateHash(&d1.Spec.Template)}
	eventually(t, time.Minute, "the engine holds v2", func() error {
		if h := holdOf(e.get(t, ns, "web")); h != want {
			return fmt.Errorf("hold %+v, want %+v", h, want)
		}
		return nil
	})
	t.Logf("FIGURE admission_bypass_repaired_after_restart_ms=%d", time.Since(restarted).Milliseconds())
	if d := e.get(t, ns, "web"); image(d) != "ghcr.io/stefanprodan/podinfo:6.0.1" {
		t.Errorf("the repair changed the template: %s", image(d))
	}
	eventually(t, 30*time.Second, "the bypass event on the Canary", func() error {
		evs, err := e.cs.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var seen []string
		for _, ev := range evs.Items {
			if ev.Regarding.Kind == "Canary" && ev.Regarding.Name == "web" && ev.Type == "Warning" &&
				strings.Contains(ev.Note, "release bypassed admission") {
				t.Logf("event %s %s: %s", ev.Type, ev.Reason, ev.Note)
				return nil
			}
			seen = append(seen, ev.Regarding.Kind+": "+ev.Note)
		}
		return fmt.Errorf("events: %q", seen)
	})
}
