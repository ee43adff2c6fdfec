package podsim

import (
	"math"
	"net/http"
	"reflect"
	"slices"
	"testing"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	corev1 "k8s.io/api/core/v1"
)

func TestMetricsIstioLabels(t *testing.T) {
	pod := testPod(withEnv(EnvVersion, "v2"), func(p *corev1.Pod) {
		p.Labels["version"] = "v2"
		p.Labels["pod-template-hash"] = "5c8d9b7f4"
		p.OwnerReferences[0].Name = "podinfo-canary-5c8d9b7f4"
	})
	_, addrs := servePod(t, pod, nil)
	base := "http://" + addrs["http"]

	for range 3 {
		doHTTP(t, http.MethodGet, base+"/", nil, map[string]string{"Host": "podinfo.test:9898"})
	}
	doHTTP(t, http.MethodGet, base+"/status/503", nil, map[string]string{"Host": "podinfo-canary.test.svc.cluster.local"})
	doHTTP(t, http.MethodGet, base+"/status/404", nil, nil)
	// Probes and scrapes are not counted.
	doHTTP(t, http.MethodGet, base+"/healthz", nil, nil)
	doHTTP(t, http.MethodGet, base+"/readyz", nil, nil)
	scrape(t, addrs["http"])

	client := testgrpc.NewTestServiceClient(dial(t, addrs["grpc"]))
	if _, err := client.EmptyCall(t.Context(), &testgrpc.Empty{}); err != nil {
		t.Fatal(err)
	}
	_, _ = client.UnaryCall(t.Context(), &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: 14}})

	fams := scrape(t, addrs["http"])
	total := fams[MetricRequestsTotal]
	if total == nil {
		t.Fatalf("no %s in /metrics", MetricRequestsTotal)
	}
	// Every series carries the destination reporter's identity of this pod.
	common := map[string]string{
		"reporter":                       "destination",
		"destination_workload":           "podinfo-canary",
		"destination_workload_namespace": "test",
		"destination_app":                "podinfo",
		"destination_version":            "v2",
		"destination_canonical_service":  "podinfo",
		"destination_canonical_revision": "v2",
		"source_workload":                "unknown",
		"connection_security_policy":     "none",
	}
	if got := len(series(total, common)); got != len(total.GetMetric()) {
		t.Errorf("%d of %d series carry the pod identity:\n%s", got, len(total.GetMetric()), describe(total))
	}

	checks := []struct {
		labels map[string]string
		want   float64
	}{
		{with("request_protocol", "http", "response_code", "200", "destination_service", "podinfo.test.svc.cluster.local",
			"destination_service_name", "podinfo", "destination_service_namespace", "test", "response_flags", "-"), 3},
		{with("request_protocol", "http", "response_code", "503", "destination_service_name", "podinfo-canary"), 1},
		{with("request_protocol", "http", "response_code", "404", "destination_service", "unknown"), 1},
		{with("request_protocol", "http"), 5},
		{with("request_protocol", "grpc", "response_code", "200", "grpc_response_status", "0"), 1},
		{with("request_protocol", "grpc", "response_code", "200", "grpc_response_status", "14"), 1},
		{with("request_protocol", "grpc"), 2},
	}
	for _, c := range checks {
		if got := counterSum(total, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v\n%s", MetricRequestsTotal, c.labels, got, c.want, describe(total))
		}
	}

	hist := fams[MetricRequestDuration]
	if hist == nil {
		t.Fatalf("no %s in /metrics", MetricRequestDuration)
	}
	var count uint64
	for _, m := range hist.GetMetric() {
		h := m.GetHistogram()
		count += h.GetSampleCount()
		var bounds []float64
		for _, b := range h.GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		if want := append(slices.Clone(DurationBucketsMS), math.Inf(1)); !reflect.DeepEqual(bounds, want) {
			t.Fatalf("buckets %v, want Istio's %v", bounds, want)
		}
	}
	if count != 7 {
		t.Errorf("histogram counts %d requests, want 7", count)
	}
}

// with is a label set from key, value pairs.
func with(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestMetricsLinkerdLabels: the same requests are counted as a Linkerd
// proxy's inbound side counts them, classified as Linkerd does (5xx and
// every gRPC status but OK fail).
func TestMetricsLinkerdLabels(t *testing.T) {
	pod := testPod(withEnv(EnvVersion, "v2"), func(p *corev1.Pod) {
		p.Labels["pod-template-hash"] = "5c8d9b7f4"
		p.OwnerReferences[0].Name = "podinfo-canary-5c8d9b7f4"
	})
	_, addrs := servePod(t, pod, nil)
	base := "http://" + addrs["http"]
	for range 3 {
		doHTTP(t, http.MethodGet, base+"/", nil, map[string]string{"Host": "podinfo.test:9898"})
	}
	doHTTP(t, http.MethodGet, base+"/status/503", nil, map[string]string{"Host": "podinfo.test:9898"})
	doHTTP(t, http.MethodGet, base+"/status/404", nil, map[string]string{"Host": "podinfo.test:9898"})
	doHTTP(t, http.MethodGet, base+"/healthz", nil, nil) // not counted
	client := testgrpc.NewTestServiceClient(dial(t, addrs["grpc"]))
	if _, err := client.EmptyCall(t.Context(), &testgrpc.Empty{}); err != nil {
		t.Fatal(err)
	}
	for _, code := range []int32{14, 5} { // UNAVAILABLE, NOT_FOUND
		_, _ = client.UnaryCall(t.Context(), &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: code}})
	}

	fams := scrape(t, addrs["http"])
	total := fams[MetricLinkerdResponses]
	if total == nil {
		t.Fatalf("no %s in /metrics", MetricLinkerdResponses)
	}
	common := with("namespace", "test", "deployment", "podinfo-canary", "pod", pod.Name, "direction", "inbound")
	if got := len(series(total, common)); got != len(total.GetMetric()) {
		t.Errorf("%d of %d series carry the pod identity:\n%s", got, len(total.GetMetric()), describe(total))
	}
	checks := []struct {
		labels map[string]string
		want   float64
	}{
		{with("classification", "success", "status_code", "200", "authority", "podinfo.test:9898"), 3},
		{with("classification", "failure", "status_code", "503"), 1},
		{with("classification", "success", "status_code", "404"), 1},
		{with("classification", "success", "grpc_status", "0"), 1},
		{with("classification", "failure", "status_code", "200", "grpc_status", "14"), 1},
		{with("classification", "failure", "grpc_status", "5"), 1},
		{with("classification", "failure"), 3},
		{nil, 8},
	}
	for _, c := range checks {
		if got := counterSum(total, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v\n%s", MetricLinkerdResponses, c.labels, got, c.want, describe(total))
		}
	}

	hist := fams[MetricLinkerdLatency]
	if hist == nil {
		t.Fatalf("no %s in /metrics", MetricLinkerdLatency)
	}
	var count uint64
	for _, m := range series(hist, common) {
		h := m.GetHistogram()
		count += h.GetSampleCount()
		var bounds []float64
		for _, b := range h.GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		if want := append(slices.Clone(LinkerdLatencyBucketsMS), math.Inf(1)); !reflect.DeepEqual(bounds, want) {
			t.Fatalf("buckets %v, want Linkerd's %v", bounds, want)
		}
	}
	if count != 8 {
		t.Errorf("latency histogram counts %d responses, want 8", count)
	}
}

// TestLinkerdSeesNoAbandonedRequest: a request the client gave up on
// before an answer has no response for Linkerd's metrics to count.
func TestLinkerdSeesNoAbandonedRequest(t *testing.T) {
	m := newPodMetrics(Identity{Pod: "p", Namespace: "test", Workload: "web"})
	m.observe(request{protocol: ProtocolHTTP, code: 0, authority: "web"})
	m.observe(request{protocol: ProtocolHTTP, code: 500, authority: "web"})
	fams, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		got[f.GetName()] = counterSum(f, nil)
	}
	if got[MetricRequestsTotal] != 2 || got[MetricLinkerdResponses] != 1 {
		t.Errorf("counted %v; want 2 Istio requests and 1 Linkerd response", got)
	}
}

// TestLinkerdMeshedPodHasNoIstioSeries: a pod annotated for Linkerd's
// injector exposes Linkerd's series only.
func TestLinkerdMeshedPodHasNoIstioSeries(t *testing.T) {
	pod := testPod(func(p *corev1.Pod) { p.Annotations = map[string]string{"linkerd.io/inject": "enabled"} })
	if got := IdentityForPod(pod).Mesh; got != MeshLinkerd {
		t.Fatalf("mesh = %q, want %q", got, MeshLinkerd)
	}
	_, addrs := servePod(t, pod, nil)
	doHTTP(t, http.MethodGet, "http://"+addrs["http"]+"/", nil, nil)
	fams := scrape(t, addrs["http"])
	if fams[MetricRequestsTotal] != nil || fams[MetricRequestDuration] != nil {
		t.Errorf("a Linkerd-meshed pod exposes Istio's series")
	}
	if got := counterSum(fams[MetricLinkerdResponses], with("classification", "success")); got != 1 {
		t.Errorf("%s = %v, want 1", MetricLinkerdResponses, got)
	}
	for _, v := range []string{"", "disabled"} {
		p := testPod(func(p *corev1.Pod) { p.Annotations = map[string]string{"linkerd.io/inject": v} })
		if got := MeshForPod(p); got != MeshAny {
			t.Errorf("linkerd.io/inject=%q: mesh %q, want both", v, got)
		}
	}
}

func TestServiceFromAuthority(t *testing.T) {
	tests := []struct{ authority, svc, name, ns string }{
		{"podinfo", "podinfo.test.svc.cluster.local", "podinfo", "test"},
		{"podinfo:9898", "podinfo.test.svc.cluster.local", "podinfo", "test"},
		{"podinfo.other", "podinfo.other.svc.cluster.local", "podinfo", "other"},
		{"podinfo.other.svc", "podinfo.other.svc.cluster.local", "podinfo", "other"},
		{"podinfo.other.svc.cluster.local.", "podinfo.other.svc.cluster.local", "podinfo", "other"},
		{"PodInfo.Other.svc.cluster.local:80", "podinfo.other.svc.cluster.local", "podinfo", "other"},
		{"127.1.0.5:9898", "unknown", "unknown", "unknown"},
		{"[::1]:80", "unknown", "unknown", "unknown"},
		{"localhost:80", "unknown", "unknown", "unknown"},
		{"", "unknown", "unknown", "unknown"},
		{"example.com.au", "unknown", "unknown", "unknown"},
		{"bad_name.test", "unknown", "unknown", "unknown"},
	}
	for _, tt := range tests {
		svc, name, ns := serviceFromAuthority(tt.authority, "test")
		if svc != tt.svc || name != tt.name || ns != tt.ns {
			t.Errorf("serviceFromAuthority(%q) = %q %q %q, want %q %q %q", tt.authority, svc, name, ns, tt.svc, tt.name, tt.ns)
		}
	}
}

func TestMetricsArePerPod(t *testing.T) {
	a, addrsA := servePod(t, testPod(), nil)
	b, _ := servePod(t, testPod(func(p *corev1.Pod) { p.Name = "other" }), nil)
	doHTTP(t, http.MethodGet, "http://"+addrsA["http"]+"/", nil, nil)
	count := func(s *PodServer) float64 {
		fams, err := s.Gatherer().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == MetricRequestsTotal {
				return counterSum(f, nil)
			}
		}
		return 0
	}
	if count(a) != 1 || count(b) != 0 {
		t.Errorf("requests: pod a %v, pod b %v; want 1 and 0", count(a), count(b))
	}
}
