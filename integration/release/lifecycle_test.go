package release

import (
	"fmt"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/harness"
)

// annotationKnobs make an annotation-only release: gRPC on 9999, steps of
// 10 to 50, interval 1s. Annotation-only releases check the built-in
// Prometheus metrics; without a Prometheus every check fails, so the
// release holds at weight 10 (a high threshold keeps it from rolling
// back): a release in the middle, which is what these tests need.
var annotationKnobs = map[string]string{
	v1alpha1.AnnotationInterval: "1s", v1alpha1.AnnotationStepWeight: "10", v1alpha1.AnnotationMaxWeight: "50",
	v1alpha1.AnnotationPort: "9999", v1alpha1.AnnotationProtocol: "grpc", v1alpha1.AnnotationThreshold: "1000",
}

// testOptOutMidRelease removes the opt-in annotation with kubectl while
// an annotation-only release runs: serin routes everything to stable,
// deletes its copy, its Services and its Canary and gives the Deployment
// back unpaused, which then rolls out the applied template.
func testOptOutMidRelease(t *testing.T, s *harness.Serin) {
	e := newEnvWith(t, 2*time.Minute, s)
	w := e.watchCanary()
	e.apply(app{Version: "8.0.0", Annotations: annotationKnobs}.deployment(e.ns))
	e.waitFor(w, 0, 30*time.Second, "canary made from the annotations", phaseIs(v1alpha1.PhaseInitialized))
	conn := harness.XDSClient(t, e.s.XDSAddress(), "optout", "podinfo."+e.ns+":9999")
	harness.Send(e.ctx, conn, 10)

	from := w.len()
	e.apply(app{Version: "8.0.1", Annotations: annotationKnobs}.deployment(e.ns))
	e.waitFor(w, from, 30*time.Second, "weight 10", func(r record) bool {
		return r.Phase == v1alpha1.PhaseProgressing && r.Weight == 10 && r.appliedWeight()
	})
	if e.deploymentObj("podinfo-canary") == nil || !e.deploymentObj("podinfo").Spec.Paused {
		t.Fatal("no release in the middle")
	}
	for _, name := range []string{"podinfo-canary", "podinfo-primary"} {
		if e.service(name) == nil {
			t.Fatalf("no Service %s in the middle of the release", name)
		}
	}
	e.kubectl("annotate", "deployment", "podinfo", v1alpha1.AnnotationCanary+"-")
	e.waitFor(w, from, 20*time.Second, "terminating", phaseIs(v1alpha1.PhaseTerminating))
	e.givenBack(false, "8.0.1")
	for _, r := range w.since(from) {
		if r.Phase == v1alpha1.PhaseTerminating && r.Weight != 0 {
			t.Fatalf("terminating with weight %d", r.Weight)
		}
	}
}

// TestUninstallMidRelease runs `serin uninstall` while two releases run,
// one of an annotation-only Deployment and one of a Deployment opted in by
// an explicit Canary: both are given back, nothing of serin's is left.
func TestUninstallMidRelease(t *testing.T) {
	ea := newEnv(t, 2*time.Minute, harness.Options{})
	eb := newEnvWith(t, 2*time.Minute, ea.s)
	wa, wb := ea.watchCanary(), eb.watchCanary()
	ea.apply(app{Version: "9.0.0", Annotations: annotationKnobs}.deployment(ea.ns))
	eb.apply(canary(eb.ns, v1alpha1.CanaryAnalysis{StepWeight: 10, MaxWeight: 50}), app{Version: "9.0.0", NoOptIn: true}.deployment(eb.ns))
	ea.waitFor(wa, 0, 30*time.Second, "annotation-only release initialized", phaseIs(v1alpha1.PhaseInitialized))
	eb.waitFor(wb, 0, 30*time.Second, "explicit release initialized", phaseIs(v1alpha1.PhaseInitialized))
	if d := eb.deploymentObj("podinfo"); d.Annotations[v1alpha1.AnnotationOptedInBy] != "podinfo" {
		t.Fatalf("explicit Canary did not opt the Deployment in: %v", d.Annotations)
	}
	for _, e := range []*env{ea, eb} {
		conn := harness.XDSClient(t, e.s.XDSAddress(), "uninstall-"+e.ns, "podinfo."+e.ns+":9999")
		harness.Send(e.ctx, conn, 10)
	}
	fa, fb := wa.len(), wb.len()
	ea.apply(app{Version: "9.0.1", Annotations: annotationKnobs}.deployment(ea.ns))
	eb.apply(app{Version: "9.0.1", NoOptIn: true}.deployment(eb.ns))
	midRelease := func(r record) bool {
		return r.Phase == v1alpha1.PhaseProgressing && r.Weight >= 10 && r.appliedWeight()
	}
	ea.waitFor(wa, fa, 30*time.Second, "annotation-only release at weight 10", midRelease)
	eb.waitFor(wb, fb, 30*time.Second, "explicit release at weight 10", midRelease)

	start := time.Now()
	out, code := ea.serin(ea.ctx, "uninstall", "--timeout=60s")
	if code != 0 {
		t.Fatalf("serin uninstall exited %d: %s", code, out)
	}
	t.Logf("FIGURE uninstall_seconds=%.1f", time.Since(start).Seconds())
	for _, name := range []string{"mutatingwebhookconfiguration", "validatingwebhookconfiguration"} {
		if out, err := ea.c.Kubectl(ea.ctx, "", "get", name, "serin", "--ignore-not-found", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("%s serin left after uninstall: %q %v", name, out, err)
		}
	}
	ea.givenBack(false, "9.0.1")
	eb.givenBack(true, "9.0.1")
}

// testHPACopy releases a Deployment with autoscalerRef: the canary copy
// gets a copy of the HPA while the release runs, and loses it after.
func testHPACopy(t *testing.T, s *harness.Serin) {
	e := newEnvWith(t, 2*time.Minute, s)
	w := e.watchCanary()
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: e.ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			MinReplicas:    ptr.To[int32](3), MaxReplicas: 6,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)}}}},
		},
	}
	cn := canary(e.ns, v1alpha1.CanaryAnalysis{StepWeight: 10, MaxWeight: 30})
	cn.Spec.AutoscalerRef = &v1alpha1.AutoscalerReference{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Name: "podinfo"}
	e.apply(cn, hpa, app{Version: "10.0.0"}.deployment(e.ns))
	e.waitFor(w, 0, 30*time.Second, "initialized", phaseIs(v1alpha1.PhaseInitialized))
	conn := harness.XDSClient(t, e.s.XDSAddress(), "hpa", "podinfo."+e.ns+":9999")
	harness.Send(e.ctx, conn, 10)

	from := w.len()
	e.apply(app{Version: "10.0.1"}.deployment(e.ns))
	e.waitFor(w, from, 30*time.Second, "progressing", phaseIs(v1alpha1.PhaseProgressing))
	e.eventually(20*time.Second, "HPA copy", func() (bool, string) {
		h, err := e.cs.AutoscalingV2().HorizontalPodAutoscalers(e.ns).Get(e.ctx, "podinfo-canary", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if h.Spec.ScaleTargetRef.Name != "podinfo-canary" || *h.Spec.MinReplicas != 3 || h.Spec.MaxReplicas != 6 ||
			h.Labels["app.kubernetes.io/managed-by"] != "serin" || len(h.OwnerReferences) != 1 || h.OwnerReferences[0].Kind != "Canary" {
			return false, fmt.Sprintf("HPA copy %+v %+v", h.ObjectMeta, h.Spec)
		}
		return true, ""
	})
	if r := w.last(); r.Phase != v1alpha1.PhaseProgressing {
		t.Fatalf("release no longer running when the HPA copy was checked: %s", r)
	}
	e.waitFor(w, from, time.Minute, "succeeded", phaseIs(v1alpha1.PhaseSucceeded))
	e.eventually(20*time.Second, "HPA copy deleted", func() (bool, string) {
		_, err := e.cs.AutoscalingV2().HorizontalPodAutoscalers(e.ns).Get(e.ctx, "podinfo-canary", metav1.GetOptions{})
		return err != nil && strings.Contains(err.Error(), "not found"), fmt.Sprint(err)
	})
	e.copyGone(20 * time.Second)
	h, err := e.cs.AutoscalingV2().HorizontalPodAutoscalers(e.ns).Get(e.ctx, "podinfo", metav1.GetOptions{})
	if err != nil || h.Spec.ScaleTargetRef.Name != "podinfo" {
		t.Fatalf("the user's HPA after the release: %v %+v", err, h)
	}
}

// serinWritten are the annotations serin puts on a Deployment.
var serinWritten = []string{v1alpha1.AnnotationCandidateRevision, v1alpha1.AnnotationStableRevision, v1alpha1.AnnotationOptedInBy}

// givenBack waits until serin has let go of the namespace's Deployment:
// no Canary, no copy, no object of serin's, the Deployment unpaused
// without serin's annotations (nor the opt-in when serin added it) and
// rolled out on its template; and checks that it stays so beyond the time
// serin waits before adopting an annotated Deployment.
func (e *env) givenBack(optedInBySerin bool, version string) {
	e.t.Helper()
	check := func() (bool, string) {
		var canaries v1alpha1.CanaryList
		if err := e.cl.List(e.ctx, &canaries, client.InNamespace(e.ns)); err != nil {
			return false, err.Error()
		}
		if len(canaries.Items) > 0 {
			c := canaries.Items[0]
			return false, fmt.Sprintf("canary %s left: phase %s, deleting %v", c.Name, c.Status.Phase, c.DeletionTimestamp != nil)
		}
		managed := metav1.ListOptions{LabelSelector: v1alpha1.LabelManagedBy + "=" + v1alpha1.ManagedByValue}
		deps, err := e.cs.AppsV1().Deployments(e.ns).List(e.ctx, managed)
		if err != nil || len(deps.Items) > 0 {
			return false, fmt.Sprintf("serin's deployments left: %v", err)
		}
		hpas, err := e.cs.AutoscalingV2().HorizontalPodAutoscalers(e.ns).List(e.ctx, managed)
		if err != nil || len(hpas.Items) > 0 {
			return false, fmt.Sprintf("serin's HPAs left: %v", err)
		}
		svcs, err := e.cs.CoreV1().Services(e.ns).List(e.ctx, managed)
		if err != nil || len(svcs.Items) > 0 {
			return false, fmt.Sprintf("serin's Services left (%d): %v", len(svcs.Items), err)
		}
		if pods := e.pods("serin.dev/track=canary"); len(pods) > 0 {
			return false, fmt.Sprintf("%d canary pods left", len(pods))
		}
		d := e.deploymentObj("podinfo")
		if d.Spec.Paused {
			return false, "deployment still paused"
		}
		for _, k := range serinWritten {
			if _, ok := d.Annotations[k]; ok {
				return false, "deployment keeps annotation " + k
			}
		}
		if _, ok := d.Annotations[v1alpha1.AnnotationCanary]; ok && optedInBySerin {
			return false, "deployment keeps the opt-in serin added"
		}
		if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != 3 || d.Status.AvailableReplicas != 3 || d.Status.Replicas != 3 {
			return false, fmt.Sprintf("deployment not rolled out: %+v", d.Status)
		}
		for _, p := range e.pods("app=podinfo") {
			if podVersion(p) != version {
				return false, fmt.Sprintf("pod %s runs %s", p.Name, podVersion(p))
			}
		}
		return true, ""
	}
	e.eventually(60*time.Second, "deployment given back in "+e.ns, check)
	time.Sleep(4 * time.Second)
	if ok, msg := check(); !ok {
		e.t.Fatalf("deployment in %s taken again: %s", e.ns, msg)
	}
}
