package podsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// testPod is a Ready pod of Deployment "podinfo" with an http and a grpc port.
func testPod(mods ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:         "podinfo-7d9f8c6b5-x2x4z",
			GenerateName: "podinfo-7d9f8c6b5-",
			Namespace:    "test",
			UID:          "3f1c0e2a-0000-4000-8000-000000000001",
			Labels:       map[string]string{"app": "podinfo", "pod-template-hash": "7d9f8c6b5"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "podinfo-7d9f8c6b5", UID: "rs-uid", Controller: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "podinfo",
			Image: "ghcr.io/stefanprodan/podinfo:6.0.1",
			Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 9898, Protocol: corev1.ProtocolTCP},
				{Name: "grpc", ContainerPort: 9999, Protocol: corev1.ProtocolTCP},
			},
		}}},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      "127.1.0.5",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func withEnv(kv ...string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		for i := 0; i+1 < len(kv); i += 2 {
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: kv[i], Value: kv[i+1]})
		}
	}
}

// anyPortListen binds every address on 127.0.0.1 with a kernel-chosen port.
func anyPortListen(ctx context.Context, network, _ string) (net.Listener, error) {
	return (&net.ListenConfig{}).Listen(ctx, network, "127.0.0.1:0")
}

// servePod starts a PodServer for pod on kernel-chosen loopback ports and returns
// its addresses by port name. The server is shut down when the test ends.
func servePod(t *testing.T, pod *corev1.Pod, draw func() float64) (*PodServer, map[string]string) {
	t.Helper()
	srv, err := NewPodServer(pod, ServerOptions{Listen: anyPortListen, Draw: draw})
	if err != nil {
		t.Fatalf("NewPodServer: %v", err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	addrs := map[string]string{}
	for _, a := range srv.Addrs() {
		addrs[a.PortName] = a.Addr
	}
	return srv, addrs
}

// seeded returns a deterministic, concurrency-safe draw function.
func seeded(seed uint64) func() float64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Float64()
	}
}

type httpResult struct {
	code   int
	header http.Header
	body   []byte
}

// freshConns opens a connection per request: a stopped pod's server drains
// its open connections in the background (as a terminating container may),
// so a kept-alive one could still reach the old server after a restart.
var freshConns = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func doHTTP(t *testing.T, method, url string, body io.Reader, hdr map[string]string) httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := freshConns.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return httpResult{code: resp.StatusCode, header: resp.Header, body: b}
}

func decodeJSON[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// scrape fetches and parses /metrics over HTTP, as Prometheus would.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	res := doHTTP(t, http.MethodGet, "http://"+addr+"/metrics", nil, nil)
	if res.code != http.StatusOK {
		t.Fatalf("/metrics: status %d", res.code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(res.body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, res.body)
	}
	return fams
}

// series finds the metrics of a family whose labels include all of want.
func series(fam *dto.MetricFamily, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range fam.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range want {
			if got[k] != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func counterSum(fam *dto.MetricFamily, want map[string]string) float64 {
	var sum float64
	for _, m := range series(fam, want) {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

func describe(fam *dto.MetricFamily) string {
	var b strings.Builder
	for _, m := range fam.GetMetric() {
		fmt.Fprintf(&b, "%v\n", m.GetLabel())
	}
	return b.String()
}
