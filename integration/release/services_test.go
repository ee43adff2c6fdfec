package release

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/integration/podsim"
)

// testServicesForHooks runs the hooks of Flagger's guides against the
// Services serin owns: the acceptance test (pre-rollout: curl -sd 'test'
// http://podinfo-canary.<ns>:9898/token | grep token, on `serin tester`)
// and the load test (rollout: hey on podinfo-canary). Cluster DNS is
// played by curl's --resolve and hey's Host header: the name stands for
// the Service's cluster IP, where a userspace stand-in for kube-proxy
// forwards to the Service's endpoints. The canary pods' own request
// metrics show that the hooks reached them, and them only; podinfo-primary
// reaches the stable pods only. The Services follow the spec, come back
// when deleted, and go with the Canary, while the user's Service is never
// touched.
func testServicesForHooks(t *testing.T, s *harness.Serin) {
	e := newEnvWith(t, 4*time.Minute, s)
	w := e.watchCanary()
	tt := harness.StartTester(t, "--allow-bash")
	cn := servicesCanary(e.ns, nil)
	user := userService(e.ns)
	e.apply(user, cn, app{Version: "11.0.0", NoOptIn: true}.deployment(e.ns))
	userRV := e.service("podinfo").ResourceVersion
	e.waitFor(w, 0, time.Minute, "initialized", phaseIs(v1alpha1.PhaseInitialized))

	owner := e.canaryObj()
	e.checkService(owner, "podinfo-canary", map[string]string{"app": "podinfo-canary"}, "canary")
	e.checkService(owner, "podinfo-primary", map[string]string{"app": "podinfo"}, "stable")
	canaryProxy := harness.ProxyService(t, e.cs, e.ns, "podinfo-canary")
	primaryProxy := harness.ProxyService(t, e.cs, e.ns, "podinfo-primary")
	canaryHost, primaryHost := "podinfo-canary."+e.ns+":9898", "podinfo-primary."+e.ns+":9898"
	canaryIP, _, _ := strings.Cut(canaryProxy.Addr, ":")

	// The guides' hooks, with the cluster IP standing in for cluster DNS.
	e.apply(servicesCanary(e.ns, []v1alpha1.CanaryWebhook{
		{Name: "acceptance-test", Type: v1alpha1.HookPreRollout, URL: tt.URL + "/", Timeout: "30s", Metadata: map[string]string{
			"type": "bash", "cmd": fmt.Sprintf("curl -sd 'test' --resolve %s:%s http://%s/token | grep token", canaryHost, canaryIP, canaryHost)}},
		{Name: "load-test", Type: v1alpha1.HookRollout, URL: tt.URL + "/", Timeout: "5s", Metadata: map[string]string{
			"cmd": fmt.Sprintf("hey -z 20s -q 10 -c 2 -host %s http://%s/", canaryHost, canaryProxy.Addr)}},
		{Name: "promotion-gate", Type: v1alpha1.HookConfirmPromotion, URL: tt.URL + "/gate/check"},
	}))
	from := w.len()
	e.apply(app{Version: "11.0.1", NoOptIn: true}.deployment(e.ns))
	e.waitFor(w, from, time.Minute, "waiting for promotion", phaseIs(v1alpha1.PhaseWaitingPromotion))

	canaryPods, stablePods := e.pods("app=podinfo-canary,serin.dev/track=canary"), e.pods("app=podinfo")
	if len(canaryPods) != 2 || len(stablePods) != 3 {
		t.Fatalf("%d canary pods, %d stable pods; want 2 and 3", len(canaryPods), len(stablePods))
	}
	// Each Service's endpoints are exactly its track's pods.
	e.endpointsAre("podinfo-canary", canaryPods)
	e.endpointsAre("podinfo-primary", stablePods)
	e.eventually(10*time.Second, "the acceptance test passed", func() (bool, string) {
		events := e.canaryEvents()
		_, ok := inOrder(events, []string{"Pre-rollout checks passed for podinfo." + e.ns})
		return ok, strings.Join(events, "\n")
	})
	// The hooks' requests landed on canary pods, every one of them, and on
	// no stable pod.
	e.eventually(30*time.Second, "load test on every canary pod", func() (bool, string) {
		got := podRequests(t, canaryPods, "podinfo-canary")
		return len(got) == 2 && got[canaryPods[0].Name] >= 5 && got[canaryPods[1].Name] >= 5, fmt.Sprintf("requests for podinfo-canary by pod: %v", got)
	})
	if got := podRequests(t, stablePods, "podinfo-canary"); len(got) > 0 {
		t.Fatalf("stable pods served requests for podinfo-canary: %v", got)
	}
	t.Logf("podinfo-canary at %s: hook requests by canary pod %v, connections forwarded %v",
		canaryProxy.Addr, podRequests(t, canaryPods, "podinfo-canary"), canaryProxy.Forwarded())
	for pod := range canaryProxy.Forwarded() {
		if !slices.ContainsFunc(canaryPods, func(p corev1.Pod) bool { return p.Name == pod }) {
			t.Fatalf("podinfo-canary forwarded to %s, not a canary pod", pod)
		}
	}
	// podinfo-primary reaches the stable pods only, podinfo-canary the
	// candidate only.
	e.sendThrough(primaryProxy, primaryHost, 20, "11.0.0", stablePods)
	e.sendThrough(canaryProxy, canaryHost, 20, "11.0.1", canaryPods)
	if got := podRequests(t, canaryPods, "podinfo-primary"); len(got) > 0 {
		t.Fatalf("canary pods served requests for podinfo-primary: %v", got)
	}

	// A deleted Service comes back.
	uid := e.service("podinfo-canary").UID
	e.kubectl("delete", "service", "podinfo-canary")
	e.eventually(20*time.Second, "podinfo-canary made again", func() (bool, string) {
		svc := e.service("podinfo-canary")
		return svc != nil && svc.UID != uid && metav1.IsControlledBy(svc, owner), fmt.Sprintf("%+v", svc)
	})

	if code := tt.Post(t, "/gate/open", "podinfo", e.ns); code != http.StatusAccepted {
		t.Fatalf("/gate/open answered %d", code)
	}
	e.waitFor(w, from, time.Minute, "succeeded", phaseIs(v1alpha1.PhaseSucceeded))
	e.copyGone(30 * time.Second)
	e.endpointsAre("podinfo-canary", nil)
	e.endpointsAre("podinfo-primary", e.pods("app=podinfo"))

	// Deleting the Canary takes serin's Services with it, and only them.
	e.kubectl("delete", "canary", "podinfo", "--wait=false")
	e.givenBack(true, "11.0.1")
	if svc := e.service("podinfo"); svc == nil || svc.ResourceVersion != userRV {
		t.Fatalf("the user's Service was touched: %+v", svc)
	}
}

// servicesCanary is podinfo's Canary on its HTTP port, with metadata for
// the Services serin owns, two canary pods and the given hooks.
func servicesCanary(ns string, hooks []v1alpha1.CanaryWebhook) *v1alpha1.Canary {
	c := canary(ns, v1alpha1.CanaryAnalysis{StepWeight: 25, MaxWeight: 50, Webhooks: hooks})
	c.Spec.Service = v1alpha1.CanaryService{
		Port: 9898, TargetPort: intstr.FromString("http"), PortName: "http", AppProtocol: "http",
		Canary: &v1alpha1.CustomMetadata{
			Labels:      map[string]string{"team": "podinfo", v1alpha1.LabelManagedBy: "someone-else"},
			Annotations: map[string]string{"example.com/track": "canary"},
		},
		Primary: &v1alpha1.CustomMetadata{Labels: map[string]string{"team": "podinfo"}, Annotations: map[string]string{"example.com/track": "primary"}},
	}
	c.Spec.CanaryReplicas = &v1alpha1.CanaryReplicas{Policy: v1alpha1.ReplicasFixed, Count: 2}
	return c
}

// userService is the user's own Service podinfo.
func userService(ns string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns, Labels: map[string]string{"app": "podinfo"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "podinfo"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 9898, TargetPort: intstr.FromString("http")}}},
	}
}

// service is the namespace's Service name (nil when there is none).
func (e *env) service(name string) *corev1.Service {
	e.t.Helper()
	var svc corev1.Service
	if err := e.cl.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: name}, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		e.t.Fatal(err)
	}
	return &svc
}

// checkService checks a Service serin owns: the Canary's port, selector,
// metadata (serin's labels winning over the user's) and ownership.
func (e *env) checkService(owner *v1alpha1.Canary, name string, selector map[string]string, track string) {
	e.t.Helper()
	svc := e.service(name)
	if svc == nil {
		e.t.Fatalf("no Service %s after initialization", name)
	}
	meta := owner.Spec.Service.Canary
	if track == "stable" {
		meta = owner.Spec.Service.Primary
	}
	wantLabels := maps.Clone(meta.Labels)
	wantLabels[v1alpha1.LabelManagedBy], wantLabels[v1alpha1.LabelTrack] = v1alpha1.ManagedByValue, track
	p := svc.Spec.Ports
	if len(p) != 1 || p[0].Name != "http" || p[0].Port != 9898 || p[0].TargetPort != intstr.FromString("http") ||
		p[0].AppProtocol == nil || *p[0].AppProtocol != "http" || p[0].Protocol != corev1.ProtocolTCP {
		e.t.Fatalf("%s ports: %+v", name, p)
	}
	if !maps.Equal(svc.Spec.Selector, selector) || !maps.Equal(svc.Labels, wantLabels) || !maps.Equal(svc.Annotations, meta.Annotations) {
		e.t.Fatalf("%s: selector %v labels %v annotations %v; want %v %v %v", name, svc.Spec.Selector, svc.Labels, svc.Annotations, selector, wantLabels, meta.Annotations)
	}
	if !metav1.IsControlledBy(svc, owner) || svc.OwnerReferences[0].Kind != "Canary" {
		e.t.Fatalf("%s owners: %+v", name, svc.OwnerReferences)
	}
}

// endpointsAre checks that the Service's endpoints are exactly the pods,
// all ready.
func (e *env) endpointsAre(name string, pods []corev1.Pod) {
	e.t.Helper()
	var want []string
	for _, p := range pods {
		want = append(want, p.Name+"="+p.Status.PodIP+":9898")
	}
	e.eventually(20*time.Second, "endpoints of "+name, func() (bool, string) {
		svc := e.service(name)
		if svc == nil {
			return false, "no Service"
		}
		eps, err := harness.ServiceEndpoints(e.ctx, e.cs, svc, svc.Spec.Ports[0])
		if err != nil {
			return false, err.Error()
		}
		var got []string
		for _, ep := range eps {
			if ep.Ready {
				got = append(got, fmt.Sprintf("%s=%s:%d", ep.Pod, ep.IP, ep.Port))
			}
		}
		return slices.Equal(got, want) && len(got) == len(eps), fmt.Sprintf("endpoints %+v, want %v", eps, want)
	})
}

// podRequests are the HTTP requests for a Service each pod served (from
// the pod's own Istio-style metrics), by pod; pods that served none are
// left out.
func podRequests(t *testing.T, pods []corev1.Pod, service string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, p := range pods {
		n, err := harness.MetricSum("http://"+p.Status.PodIP+":9898/metrics", podsim.MetricRequestsTotal,
			"destination_service_name", service, "request_protocol", "http")
		if err != nil {
			t.Fatalf("metrics of pod %s: %v", p.Name, err)
		}
		if n > 0 {
			out[p.Name] = n
		}
	}
	return out
}

// sendThrough sends n requests to host through a Service's cluster IP and
// checks that the version and pods answering are the track's.
func (e *env) sendThrough(p *harness.ServiceProxy, host string, n int, version string, pods []corev1.Pod) {
	e.t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range n {
		req, err := http.NewRequestWithContext(e.ctx, http.MethodGet, "http://"+p.Addr+"/", nil)
		if err != nil {
			e.t.Fatal(err)
		}
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			e.t.Fatalf("GET %s through %s: %v", host, p, err)
		}
		resp.Body.Close()
		pod := resp.Header.Get(podsim.HeaderPod)
		if resp.StatusCode != http.StatusOK || resp.Header.Get(podsim.HeaderVersion) != version ||
			!slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.Name == pod }) {
			e.t.Fatalf("GET %s through %s: %d from pod %s version %s; want version %s from one of %v",
				host, p, resp.StatusCode, pod, resp.Header.Get(podsim.HeaderVersion), version, podNames(pods))
		}
	}
}
