package release

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

// tutorialCanary is podinfo's Canary as Flagger's tutorials write it:
// service port 9898 to container port 9898, an HPA, and no Service of the
// user's; here with the Service fields of Flagger's schema that shape the
// Services serin owns.
func tutorialCanary(ns string) *v1alpha1.Canary {
	c := canary(ns, v1alpha1.CanaryAnalysis{StepWeight: 50, MaxWeight: 50})
	c.Spec.AutoscalerRef = &v1alpha1.AutoscalerReference{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Name: "podinfo"}
	c.Spec.Service = v1alpha1.CanaryService{
		Port: 9898, TargetPort: intstr.FromInt32(9898), PortDiscovery: true, Headless: true, TrafficDistribution: "PreferSameZone",
		Apex:              &v1alpha1.CustomMetadata{Labels: map[string]string{"tier": "frontend"}, Annotations: map[string]string{"example.com/owner": "podinfo"}},
		UnmanagedMetadata: &v1alpha1.UnmanagedMetadata{Labels: []string{"example.com/mesh"}},
	}
	return c
}

func tutorialHPA(ns string) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			MinReplicas:    ptr.To[int32](3), MaxReplicas: 6,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)}}}},
		},
	}
}

// testApexService: a Flagger-tutorial app (Deployment + HPA + Canary, no
// Service) gets the apex Service podinfo from serin, owned by the Canary,
// with service.apex's metadata, every container port (portDiscovery) and a
// cluster IP through which it serves, before and after a release; the
// track Services are headless with the trafficDistribution asked for, and
// keep the labels others set that unmanagedMetadata lists. A Service the
// user applies over serin's apex becomes theirs and outlives the Canary.
func testApexService(t *testing.T, s *harness.Serin) {
	e := newEnvWith(t, 4*time.Minute, s)
	w := e.watchCanary()
	e.apply(tutorialCanary(e.ns), tutorialHPA(e.ns), app{Version: "12.0.0", NoOptIn: true}.deployment(e.ns))
	e.waitFor(w, 0, time.Minute, "initialized", phaseIs(v1alpha1.PhaseInitialized))

	owner := e.canaryObj()
	wantPorts := []string{"http/TCP/9898->9898", "grpc/TCP/9999->9999"}
	apex := e.service("podinfo")
	if apex == nil || !metav1.IsControlledBy(apex, owner) || !maps.Equal(apex.Spec.Selector, map[string]string{"app": "podinfo"}) ||
		apex.Labels["tier"] != "frontend" || apex.Labels[v1alpha1.LabelManagedBy] != v1alpha1.ManagedByValue ||
		apex.Annotations["example.com/owner"] != "podinfo" || apex.Spec.ClusterIP == corev1.ClusterIPNone {
		t.Fatalf("apex Service: %+v", apex)
	}
	for _, name := range []string{"podinfo", "podinfo-canary", "podinfo-primary"} {
		svc := e.service(name)
		if got := servicePortStrings(svc); strings.Join(got, ",") != strings.Join(wantPorts, ",") {
			t.Fatalf("%s ports %v, want %v", name, got, wantPorts)
		}
		if td := svc.Spec.TrafficDistribution; td == nil || *td != "PreferSameZone" {
			t.Fatalf("%s trafficDistribution %v", name, td)
		}
		if headless := svc.Spec.ClusterIP == corev1.ClusterIPNone; headless != (name != "podinfo") {
			t.Fatalf("%s cluster IP %q", name, svc.Spec.ClusterIP)
		}
	}
	proxy := harness.ProxyService(t, e.cs, e.ns, "podinfo")
	host := "podinfo." + e.ns + ":9898"
	e.endpointsAre("podinfo", e.pods("app=podinfo"))
	e.sendThrough(proxy, host, 10, "12.0.0", e.pods("app=podinfo"))

	// Others' labels: the listed one stays when serin next writes the
	// Service, the others go.
	e.kubectl("label", "service", "podinfo-primary", "example.com/mesh=on", "example.com/stray=x")
	cn := tutorialCanary(e.ns)
	cn.Spec.Service.Primary = &v1alpha1.CustomMetadata{Annotations: map[string]string{"example.com/rev": "2"}}
	e.apply(cn)
	e.eventually(20*time.Second, "podinfo-primary rewritten", func() (bool, string) {
		svc := e.service("podinfo-primary")
		return svc.Annotations["example.com/rev"] == "2" && svc.Labels["example.com/stray"] == "", fmt.Sprintf("%v %v", svc.Labels, svc.Annotations)
	})
	if got := e.service("podinfo-primary").Labels["example.com/mesh"]; got != "on" {
		t.Fatalf("label example.com/mesh listed in unmanagedMetadata was not kept: %q", got)
	}

	// A release, promoted: the apex serves the new version.
	from := w.len()
	e.apply(app{Version: "12.0.1", NoOptIn: true}.deployment(e.ns))
	e.waitFor(w, from, 2*time.Minute, "succeeded", phaseIs(v1alpha1.PhaseSucceeded))
	e.copyGone(30 * time.Second)
	e.endpointsAre("podinfo", e.pods("app=podinfo"))
	e.sendThrough(proxy, host, 10, "12.0.1", e.pods("app=podinfo"))

	// The user applies their own Service podinfo: it is theirs now.
	e.apply(userService(e.ns))
	e.eventually(20*time.Second, "apex handed over", func() (bool, string) {
		svc := e.service("podinfo")
		return len(svc.OwnerReferences) == 0 && svc.Labels[v1alpha1.LabelManagedBy] == "", fmt.Sprintf("%+v", svc.ObjectMeta)
	})
	rv := e.service("podinfo").ResourceVersion
	e.kubectl("delete", "canary", "podinfo", "--wait=false")
	e.givenBack(true, "12.0.1")
	if svc := e.service("podinfo"); svc == nil || svc.ResourceVersion != rv {
		t.Fatalf("the user's Service was touched after it was handed over: %+v", svc)
	}
}

func servicePortStrings(svc *corev1.Service) []string {
	var out []string
	for _, p := range svc.Spec.Ports {
		out = append(out, fmt.Sprintf("%s/%s/%d->%s", p.Name, p.Protocol, p.Port, ptr.To(p.TargetPort).String()))
	}
	return out
}

// testReadyThresholds: the canary copy runs four pods, and one stable pod
// and then one copy pod turn unready. With Flagger's defaults (100 %) the
// release holds at weight 0: on the stable pods while the copy is all
// ready, on the copy once one of its pods is not; with canaryReadyThreshold
// 75 it holds on the stable pods again, and with primaryReadyThreshold 60
// it runs to the end, cutting over to a copy with 3 of its 4 pods ready.
func testReadyThresholds(t *testing.T, s *harness.Serin) {
	e := newEnvWith(t, 4*time.Minute, s)
	w := e.watchCanary()
	cn := canary(e.ns, v1alpha1.CanaryAnalysis{StepWeight: 50, MaxWeight: 50})
	cn.Spec.ProgressDeadlineSeconds = ptr.To[int32](600)
	cn.Spec.CanaryReplicas = &v1alpha1.CanaryReplicas{Policy: v1alpha1.ReplicasFixed, Count: 4}
	e.apply(cn, app{Version: "13.0.0", NoOptIn: true}.deployment(e.ns))
	e.waitFor(w, 0, time.Minute, "initialized", phaseIs(v1alpha1.PhaseInitialized))

	e.setUnready(e.pods("app=podinfo")[0].Name)
	e.eventually(20*time.Second, "stable Deployment at 2 ready pods", func() (bool, string) {
		d := e.deploymentObj("podinfo")
		return d.Status.ReadyReplicas == 2, fmt.Sprintf("ready %d", d.Status.ReadyReplicas)
	})
	stableHeld := func(pct int) func(record) bool {
		return func(r record) bool {
			return strings.Contains(r.Message, fmt.Sprintf("2 of 3 stable pods ready, 3 needed (primaryReadyThreshold %d%%)", pct))
		}
	}

	from := w.len()
	e.apply(app{Version: "13.0.1", NoOptIn: true}.deployment(e.ns))
	e.waitFor(w, from, time.Minute, "held on the stable pods", stableHeld(100))
	e.eventually(20*time.Second, "copy at 4 ready pods", func() (bool, string) {
		d := e.deploymentObj("podinfo-canary")
		return d != nil && d.Status.ReadyReplicas == 4, fmt.Sprintf("%+v", d)
	})
	e.setUnready(e.pods("app=podinfo-canary")[0].Name)
	copyHeld := w.len()
	e.waitFor(w, copyHeld, 20*time.Second, "held on the copy", func(r record) bool {
		return strings.Contains(r.Message, "podinfo-canary."+e.ns+" to be ready")
	})

	cn.Spec.Analysis.CanaryReadyThreshold = ptr.To[int32](75)
	e.apply(cn)
	e.waitFor(w, copyHeld, 20*time.Second, "held on the stable pods again", stableHeld(100))
	for _, r := range w.since(from) {
		if r.Weight > 0 {
			t.Fatalf("traffic moved before the pods were ready: %s", r)
		}
	}

	cn.Spec.Analysis.PrimaryReadyThreshold = ptr.To[int32](60)
	e.apply(cn)
	e.waitFor(w, from, 2*time.Minute, "succeeded", phaseIs(v1alpha1.PhaseSucceeded))
	t.Logf("release: %v", w.since(from))
}

// setUnready turns a pod unready through the API, as a failing readiness
// probe would.
func (e *env) setUnready(pod string) {
	e.t.Helper()
	patch := `{"status":{"conditions":[{"type":"Ready","status":"False","reason":"ReadinessProbeFailed"},{"type":"ContainersReady","status":"False","reason":"ReadinessProbeFailed"}]}}`
	e.kubectl("patch", "pod", pod, "--subresource=status", "--type=strategic", "-p", patch)
}

// scaledObjectYAML is the user's KEDA ScaledObject for podinfo.
const scaledObjectYAML = `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: podinfo, namespace: %s}
spec:
  scaleTargetRef: {name: podinfo}
  minReplicaCount: 3
  maxReplicaCount: 6
  cooldownPeriod: 120
  triggers:
  - type: prometheus
    metadata: {serverAddress: "http://prometheus.monitoring:9090", threshold: "100", query: "sum(rate(http_requests_total{app=\"podinfo\"}[1m]))"}
`

// testScaledObjectCopy: with KEDA's CRD installed, a Canary whose
// autoscalerRef names a ScaledObject gets a copy of it for the canary copy
// (same triggers and bounds, scaleTargetRef on the copy, owned by the
// Canary), deleted with the copy when the release ends; the user's is
// left as it was. No KEDA runs here: the test scales the copy as KEDA's
// HPA would.
func testScaledObjectCopy(t *testing.T, s *harness.Serin) {
	harness.InstallKEDACRD(t, cluster.Get(t))
	e := newEnvWith(t, 4*time.Minute, s)
	w := e.watchCanary()
	cn := canary(e.ns, v1alpha1.CanaryAnalysis{StepWeight: 50, MaxWeight: 50})
	cn.Spec.AutoscalerRef = &v1alpha1.AutoscalerReference{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "podinfo"}
	if _, err := e.c.Kubectl(e.ctx, fmt.Sprintf(scaledObjectYAML, e.ns), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	userRV := e.kubectl("get", "scaledobject", "podinfo", "-o", "jsonpath={.metadata.resourceVersion}")
	e.apply(cn, app{Version: "14.0.0", NoOptIn: true}.deployment(e.ns))
	e.waitFor(w, 0, time.Minute, "initialized", phaseIs(v1alpha1.PhaseInitialized))

	from := w.len()
	e.apply(app{Version: "14.0.1", NoOptIn: true}.deployment(e.ns))
	want := "podinfo-canary/3/6/120/prometheus/Canary/serin"
	e.eventually(time.Minute, "ScaledObject copy", func() (bool, string) {
		out, err := e.c.Kubectl(e.ctx, "", "get", "scaledobject", "podinfo-canary", "-n", e.ns, "-o",
			`jsonpath={.spec.scaleTargetRef.name}/{.spec.minReplicaCount}/{.spec.maxReplicaCount}/{.spec.cooldownPeriod}/{.spec.triggers[0].type}/{.metadata.ownerReferences[0].kind}/{.metadata.labels.app\.kubernetes\.io/managed-by}`)
		return err == nil && out == want, fmt.Sprintf("%q %v", out, err)
	})
	if r := w.last(); r.Phase == v1alpha1.PhaseSucceeded || r.Phase == v1alpha1.PhaseFailed {
		t.Fatalf("release over before the copy was checked: %s", r)
	}
	e.kubectl("scale", "deployment", "podinfo-canary", "--replicas=3")
	e.waitFor(w, from, 2*time.Minute, "succeeded", phaseIs(v1alpha1.PhaseSucceeded))
	e.eventually(30*time.Second, "ScaledObject copy deleted", func() (bool, string) {
		out, err := e.c.Kubectl(e.ctx, "", "get", "scaledobjects", "-n", e.ns, "-o", "jsonpath={.items[*].metadata.name}")
		return err == nil && out == "podinfo", fmt.Sprintf("%q %v", out, err)
	})
	if rv := e.kubectl("get", "scaledobject", "podinfo", "-o", "jsonpath={.metadata.resourceVersion}"); rv != userRV {
		t.Fatalf("the user's ScaledObject was touched: resourceVersion %s, was %s", rv, userRV)
	}
}
