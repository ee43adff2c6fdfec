package admission

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The latency measurement: rounds patch one Deployment of each kind; the
// Deployments of a kind take turns so that each is at rest (its
// controller's status write done) when patched again.
const (
	latencyDeployments = 8
	latencyWarmup      = 24
	kubectlRounds      = 8
)

// testApplyLatency measures what the webhooks add to an apply against the
// real API server. The Deployments "with-N" and "without-N" differ only in
// the opt-in annotation: "with" is sent to both Deployment webhooks (the
// hold and the annotation checks) and held; "without" is never sent,
// thanks to the matchConditions. Each round applies a new pod template to
// one of each, in alternating order, with the strategic merge patch
// `kubectl apply` sends, timed by client-go. All are paused from the
// start, so that none makes ReplicaSets and serin's engine keeps their
// Canaries waiting for available pods: the API server does the same work
// for both kinds but the webhooks. A second series changes only a label
// (both webhooks asked, nothing to hold), and a few real `kubectl apply`
// runs are timed too. Figures only; no timing is asserted.
func (e *env) testApplyLatency(t *testing.T) {
	ns := e.c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kinds := map[string]deploy{
		"with":    {ns: ns, image: "6.0.0", annotations: enabled, paused: true},
		"without": {ns: ns, image: "6.0.0", paused: true},
	}
	var manifests []string
	for i := range latencyDeployments {
		for _, kind := range []string{"with", "without"} {
			d := kinds[kind]
			d.name = fmt.Sprintf("%s-%d", kind, i)
			manifests = append(manifests, d.yaml())
		}
	}
	if _, err := e.c.Kubectl(ctx, strings.Join(manifests, "---\n"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	// serin makes the Canaries of "with" a few seconds after their
	// creation; let that happen before timing.
	eventually(t, 30*time.Second, "serin's canaries", func() error {
		out, err := e.c.Kubectl(ctx, "", "get", "canaries", "-n", ns, "-o", "name")
		if n := strings.Count(out, "canary"); err != nil || n != latencyDeployments {
			return fmt.Errorf("%d canaries %v", n, err)
		}
		return nil
	})

	deployments := e.cs.AppsV1().Deployments(ns)
	patch := func(kind string, i int, body string) time.Duration {
		t.Helper()
		name := fmt.Sprintf("%s-%d", kind, i%latencyDeployments)
		start := time.Now()
		d, err := deployments.Patch(ctx, name, types.StrategicMergePatchType, []byte(body), metav1.PatchOptions{FieldManager: "kubectl-client-side-apply"})
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		checkLatencyHold(t, d, kind == "with")
		return took
	}
	// series times rounds of one change to a "with" and a "without"
	// Deployment, in alternating order.
	series := func(name string, rounds int, change func(i int) string) {
		for i := range latencyWarmup {
			patch("with", i, change(i))
			patch("without", i, change(i))
		}
		api0 := e.apiserverWebhookSeconds(t)
		hold0 := e.metric(t, "serin_admission_duration_seconds_count", "webhook", "hold")
		holdSum0 := e.metric(t, "serin_admission_duration_seconds_sum", "webhook", "hold")
		var with, without []time.Duration
		for i := latencyWarmup; i < latencyWarmup+rounds; i++ {
			if i%2 == 0 {
				with = append(with, patch("with", i, change(i)))
				without = append(without, patch("without", i, change(i)))
			} else {
				without = append(without, patch("without", i, change(i)))
				with = append(with, patch("with", i, change(i)))
			}
		}
		api1 := e.apiserverWebhookSeconds(t)
		holds := e.metric(t, "serin_admission_duration_seconds_count", "webhook", "hold") - hold0
		holdMean := (e.metric(t, "serin_admission_duration_seconds_sum", "webhook", "hold") - holdSum0) / holds
		// The API server retries a patch that conflicts with a concurrent
		// write (the Deployment controller's status), admission included;
		// serin's engine writes none of these Deployments, so more hold
		// requests than patches are such retries.
		if int(holds) < rounds {
			t.Errorf("%s: serin answered %v hold requests for %d patches", name, holds, rounds)
		}
		w50, w99 := percentile(with, 50), percentile(with, 99)
		o50, o99 := percentile(without, 50), percentile(without, 99)
		t.Logf("%s: %d patches of each kind over %d Deployments each (after %d warm-up); %v hold requests; load average %s",
			name, rounds, latencyDeployments, latencyWarmup, holds, loadAverage())
		t.Logf("FIGURE admission_%s_p50_ms_with_webhook=%.2f", name, ms(w50))
		t.Logf("FIGURE admission_%s_p99_ms_with_webhook=%.2f", name, ms(w99))
		t.Logf("FIGURE admission_%s_p50_ms_without_webhook=%.2f", name, ms(o50))
		t.Logf("FIGURE admission_%s_p99_ms_without_webhook=%.2f", name, ms(o99))
		t.Logf("FIGURE admission_%s_added_p50_ms=%.2f", name, ms(w50-o50))
		t.Logf("FIGURE admission_%s_added_p99_ms=%.2f", name, ms(w99-o99))
		// The hold webhook sees every patch; the annotation checks only
		// patches that set or change a serin.dev/ annotation, which these
		// do not.
		for wh, want := range map[string]bool{holdWebhook: true, checkWebhook: false} {
			n := api1[wh+" count"] - api0[wh+" count"]
			if want {
				mean := (api1[wh+" sum"] - api0[wh+" sum"]) / n
				t.Logf("FIGURE admission_%s_apiserver_call_mean_ms_%s=%.2f", name, strings.Split(wh, ".")[0], mean*1000)
			}
			if want && int(n) < rounds || !want && n != 0 {
				t.Errorf("%s: the API server called %s %v times for %d patches", name, wh, n, rounds)
			}
		}
		est, timeWait := e.webhookConnections()
		t.Logf("%s: connections to serin's webhook port: %d established, %d in TIME_WAIT", name, est, timeWait)
		t.Logf("FIGURE admission_%s_live_handler_mean_us_hold=%.1f", name, holdMean*1e6)
	}
	series("apply", applyRounds, func(i int) string {
		return fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"example.com/rev":"%d"}}}}}`, i)
	})
	series("label", 200, func(i int) string {
		return fmt.Sprintf(`{"metadata":{"labels":{"example.com/rev":"%d"}}}`, i)
	})

	// The real kubectl: a whole `kubectl apply` (process start, discovery,
	// GET, PATCH), so the webhooks' share is small.
	var kWith, kWithout []time.Duration
	for i := range kubectlRounds {
		for _, kind := range []string{"with", "without"} {
			d := kinds[kind]
			d.name, d.image = kind+"-0", fmt.Sprintf("6.1.%d", i)
			start := time.Now()
			got := e.kubectlDeployment(t, d.yaml(), "apply", "-o", "json", "-f", "-")
			took := time.Since(start)
			checkLatencyHold(t, got, kind == "with")
			if kind == "with" {
				kWith = append(kWith, took)
			} else {
				kWithout = append(kWithout, took)
			}
		}
	}
	t.Logf("%d kubectl apply runs of each kind", kubectlRounds)
	t.Logf("FIGURE admission_kubectl_apply_p50_ms_with_webhook=%.1f", ms(percentile(kWith, 50)))
	t.Logf("FIGURE admission_kubectl_apply_p50_ms_without_webhook=%.1f", ms(percentile(kWithout, 50)))
}

// checkLatencyHold asserts each timed request did what it should: held on
// the opted-in Deployment, untouched on the other.
func checkLatencyHold(t *testing.T, d *appsv1.Deployment, managed bool) {
	t.Helper()
	h := holdOf(d)
	switch {
	case managed && (!h.Paused || h.Candidate != v1alpha1.TemplateHash(&d.Spec.Template) || h.Stable == "" || h.Stable == h.Candidate):
		t.Fatalf("%s not held: %+v", d.Name, h)
	case !managed && (h.HasCandidate || h.HasStable):
		t.Fatalf("%s changed by admission: %+v", d.Name, h)
	}
}

// percentile is the nearest-rank percentile of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// loadAverage is the machine's 1, 5 and 15 minute load, for the context of
// the figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// The webhooks of the Deployments, as the chart names them.
const (
	holdWebhook  = "hold.deployments.serin.dev"
	checkWebhook = "deployments.validate.serin.dev"
)

// apiserverWebhookSeconds reads the API server's own measure of its calls
// to serin's Deployment webhooks (apiserver_admission_webhook_admission_
// duration_seconds, which covers the request, serin's answer and its
// decoding): "<webhook> sum" and "<webhook> count".
func (e *env) apiserverWebhookSeconds(t *testing.T) map[string]float64 {
	t.Helper()
	raw, err := e.cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		for _, suffix := range []string{"sum", "count"} {
			prefix := "apiserver_admission_webhook_admission_duration_seconds_" + suffix + "{"
			if !strings.HasPrefix(line, prefix) {
				continue
			}
			for _, wh := range []string{holdWebhook, checkWebhook} {
				if !strings.Contains(line, fmt.Sprintf("name=%q", wh)) {
					continue
				}
				f := strings.Fields(line)
				v, err := strconv.ParseFloat(f[len(f)-1], 64)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				out[wh+" "+suffix] += v
			}
		}
	}
	return out
}

// webhookConnections counts the TCP connections to serin's webhook port,
// established and closed (TIME_WAIT): whether the API server keeps its
// connections to the webhook or pays a TLS handshake per call.
func (e *env) webhookConnections() (established, timeWait int) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return -1, -1
	}
	port := fmt.Sprintf(":%04X", e.s.Ports.Webhook)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		server, client := strings.HasSuffix(f[1], port), strings.HasSuffix(f[2], port)
		switch {
		case f[3] == "01" && server:
			established++
		case f[3] == "06" && (server || client): // whichever side closed first
			timeWait++
		}
	}
	return established, timeWait
}
