package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The fixtures are a podinfo Deployment as the API server sends it to
// admission (defaulted, with managed fields, status and kubectl's
// last-applied annotation): v1 as stored, and v2, the same after
// `kubectl apply` of a new image.
const (
	fixtureV1 = "testdata/deployment-v1.json"
	fixtureV2 = "testdata/deployment-v2.json"
)

// recordingServer keeps the handlers Register serves, so that the tests
// call exactly what serin registers.
type recordingServer struct {
	webhook.Server
	handlers map[string]http.Handler
}

func (s *recordingServer) Register(path string, h http.Handler) { s.handlers[path] = h }

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var quietControllerRuntime sync.Once

func registered() map[string]http.Handler { return registeredOn(prometheus.NewRegistry()) }

// registeredOn is what Register serves, with its metrics on reg.
func registeredOn(reg prometheus.Registerer) map[string]http.Handler {
	// webhook.Admission logs through controller-runtime's global logger.
	quietControllerRuntime.Do(func() { ctrllog.SetLogger(logr.Discard()) })
	s := &recordingServer{Server: webhook.NewServer(webhook.Options{}), handlers: map[string]http.Handler{}}
	Register(s, NewMetrics(reg), logr.Discard())
	return s.handlers
}

func readFixture(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// review is the AdmissionReview body the API server POSTs for an UPDATE
// of a Deployment from old to obj.
func review(tb testing.TB, old, obj []byte) []byte {
	tb.Helper()
	var d appsv1.Deployment
	if err := json.Unmarshal(obj, &d); err != nil {
		tb.Fatal(err)
	}
	gvk := metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	gvr := metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("0d6e3b0c-5d3e-4a51-9f43-1f0d2b7c6a11"), Kind: gvk, Resource: gvr, RequestKind: &gvk, RequestResource: &gvr,
			Name: d.Name, Namespace: d.Namespace, Operation: admissionv1.Update,
			UserInfo:  authenticationv1.UserInfo{Username: "alice@example.com", Groups: []string{"system:authenticated", "payments"}},
			Object:    runtime.RawExtension{Raw: obj},
			OldObject: runtime.RawExtension{Raw: old},
			DryRun:    new(bool),
			Options:   runtime.RawExtension{Raw: []byte(`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl-client-side-apply","fieldValidation":"Strict"}`)},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// serve POSTs one AdmissionReview to h as the API server does and returns
// the response.
func serve(h http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func decodeResponse(tb testing.TB, w *httptest.ResponseRecorder) *admissionv1.AdmissionResponse {
	tb.Helper()
	if w.Code != http.StatusOK {
		tb.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Response == nil {
		tb.Fatalf("decode response: %v: %s", err, w.Body)
	}
	return out.Response
}

// withLabel is obj with a label added to the Deployment's metadata (not
// to its template).
func withLabel(tb testing.TB, obj []byte) []byte {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(obj, &m); err != nil {
		tb.Fatal(err)
	}
	m["metadata"].(map[string]any)["labels"].(map[string]any)["tier"] = "frontend"
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestRegisteredHoldOnFixture checks what the benchmarks time: the
// registered handler answers the realistic review of a new image with the
// hold, and a label change with a plain allow.
func TestRegisteredHoldOnFixture(t *testing.T) {
	h := registered()[PathHoldDeployment]
	v1, v2 := readFixture(t, fixtureV1), readFixture(t, fixtureV2)
	var d1, d2 appsv1.Deployment
	if err := json.Unmarshal(v1, &d1); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(v2, &d2); err != nil {
		t.Fatal(err)
	}
	resp := decodeResponse(t, serve(h, PathHoldDeployment, review(t, v1, v2)))
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("response %+v", resp)
	}
	var ops []map[string]any
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(ops)
	want := fmt.Sprint([]map[string]any{
		{"op": "add", "path": "/spec/paused", "value": true},
		{"op": "add", "path": "/metadata/annotations/serin.dev~1candidate-revision", "value": v1alpha1.TemplateHash(&d2.Spec.Template)},
		{"op": "add", "path": "/metadata/annotations/serin.dev~1stable-revision", "value": v1alpha1.TemplateHash(&d1.Spec.Template)},
	})
	if got != want {
		t.Errorf("patch\n got %s\nwant %s", got, want)
	}

	resp = decodeResponse(t, serve(h, PathHoldDeployment, review(t, v1, withLabel(t, v1))))
	if !resp.Allowed || resp.Patch != nil {
		t.Errorf("label change: %+v", resp)
	}
	resp = decodeResponse(t, serve(registered()[PathValidateDeployment], PathValidateDeployment, review(t, v1, v2)))
	if !resp.Allowed {
		t.Errorf("annotation checks denied the fixture: %+v", resp.Result)
	}
}

// BenchmarkAdmissionHandle times what serin decides, without the HTTP
// layer: the registered webhook.Admission's Handle on the decoded request
// of a new image (decode both Deployments, hash both templates, patch).
func BenchmarkAdmissionHandle(b *testing.B) {
	h, ok := registered()[PathHoldDeployment].(*webhook.Admission)
	if !ok {
		b.Fatalf("the hold handler is a %T", registered()[PathHoldDeployment])
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(review(b, readFixture(b, fixtureV1), readFixture(b, fixtureV2)), &ar); err != nil {
		b.Fatal(err)
	}
	req := admission.Request{AdmissionRequest: *ar.Request}
	if resp := h.Handle(context.Background(), req); len(resp.Patches) != 3 {
		b.Fatalf("unexpected answer %+v", resp)
	}
	measure(b, "hold_handle", func() { h.Handle(context.Background(), req) })
}

// measure runs f b.N times and reports the p50 and p99 of its runs, and
// the process CPU time per run (GC included), which a busy machine
// disturbs much less than the wall-clock percentiles.
func measure(b *testing.B, figure string, f func()) {
	b.ReportAllocs()
	took := make([]time.Duration, 0, b.N)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		f()
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	cpu := float64((cpuTime(b) - cpu0).Nanoseconds()) / float64(b.N)
	slices.Sort(took)
	p50, p99 := took[len(took)*50/100], took[len(took)*99/100]
	b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
	b.ReportMetric(cpu, "cpu-ns/op")
	if len(took) >= 1000 {
		b.Logf("FIGURE admission_handler_%s_p50_us=%.1f", figure, float64(p50.Nanoseconds())/1000)
		b.Logf("FIGURE admission_handler_%s_p99_us=%.1f", figure, float64(p99.Nanoseconds())/1000)
		b.Logf("FIGURE admission_handler_%s_cpu_us=%.1f", figure, cpu/1000)
		if la, err := os.ReadFile("/proc/loadavg"); err == nil {
			b.Logf("load average %s", strings.Join(strings.Fields(string(la))[:3], " "))
		}
	}
}

// BenchmarkAdmissionHTTP times serin's registered webhook handlers end to
// end as the webhook server runs them: decode the AdmissionReview, decide,
// encode the answer (no TLS). It reports the p50 and p99 of the requests.
func BenchmarkAdmissionHTTP(b *testing.B) {
	handlers := registered()
	v1, v2 := readFixture(b, fixtureV1), readFixture(b, fixtureV2)
	for _, bc := range []struct {
		name, path string
		body       []byte
		patched    bool
	}{
		{"hold/new-template", PathHoldDeployment, review(b, v1, v2), true},
		{"hold/label-only", PathHoldDeployment, review(b, v1, withLabel(b, v1)), false},
		{"validate-deployment", PathValidateDeployment, review(b, v1, v2), false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := handlers[bc.path]
			if resp := decodeResponse(b, serve(h, bc.path, bc.body)); !resp.Allowed || (resp.Patch != nil) != bc.patched {
				b.Fatalf("unexpected answer %+v", resp)
			}
			b.SetBytes(int64(len(bc.body)))
			measure(b, strings.NewReplacer("/", "_", "-", "_").Replace(bc.name), func() {
				if w := serve(h, bc.path, bc.body); w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			})
		})
	}
}
