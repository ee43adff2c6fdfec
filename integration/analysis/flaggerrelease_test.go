package analysis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// flaggerErrorRate is a template in the shape of Flagger's Istio guide:
// the canary's percentage of failed calls. podinfo here speaks gRPC, which
// Istio reports with response_code 200 and the status in
// grpc_response_status.
const flaggerErrorRate = `100 * (sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}",grpc_response_status!="0"}[{{ interval }}])) or vector(0)) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}"}[{{ interval }}]))`

// testFlaggerRelease: a release written for Flagger runs end to end from
// flagger.app/v1beta1 objects only: a Canary whose analysis names a
// flagger.app MetricTemplate (templateRef) and a flagger.app AlertProvider
// (providerRef). A healthy v2 is promoted (kubectl wait
// --for=condition=promoted on the flagger.app Canary, Flagger's phase and
// weight in its status); a v3 answering 30% errors is rolled back on the
// template's error rate, and the alert reaches the provider.
func (e *env) testFlaggerRelease(t *testing.T) {
	slack := newReceiver(t)
	a := &app{e: e, t: t, ns: e.c.Namespace(t), replicas: 2}
	a.apply(fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: error-rate}
spec:
  provider: {type: prometheus, address: %[1]q}
  query: %[2]q
---
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata: {name: on-call}
spec: {type: slack, channel: releases, username: flagger, address: %[3]q}
---
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: %[4]s}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: %[4]s}
  progressDeadlineSeconds: 60
  service: {port: 9999, appProtocol: grpc}
  analysis:
    interval: 3s
    threshold: 2
    maxWeight: 50
    stepWeight: 25
    metrics:
    - name: error-rate
      templateRef: {name: error-rate}
      thresholdRange: {max: 1}
      interval: 15s
    alerts:
    - name: on-call
      severity: error
      providerRef: {name: on-call}
`, e.prom.URL, flaggerErrorRate, slack.URL+"/services/T000/B000/XXX", appName))
	a.deploy("1.0.0", nil)
	w := a.watch()
	a.waitPhase(v1alpha1.PhaseInitialized, time.Minute)
	l := a.startLoad(30)

	// v2, healthy: promoted, as kubectl shows it on the Flagger object.
	start := time.Now()
	a.deploy("2.0.0", nil)
	st := a.waitPhase(v1alpha1.PhaseSucceeded, 90*time.Second)
	t.Logf("v2 promoted in %s", time.Since(start).Round(100*time.Millisecond))
	if st.FailedChecks != 0 {
		t.Errorf("v2 had %d failed checks", st.FailedChecks)
	}
	judged := false
	for _, s := range w.since(start) {
		got := sample(s.status.LastVerdict, "error-rate/canary")
		judged = judged || strings.Contains(got, "(max 1) pass") && strings.Contains(got, "from prometheus")
	}
	if !judged {
		t.Errorf("v2 was never judged on the flagger.app template:\n%s", w.history())
	}
	a.kubectl("", "-n", a.ns, "wait", "--for=condition=promoted", "--timeout=30s", "canaries.flagger.app/"+appName)
	if out := a.kubectl("", "-n", a.ns, "get", "canaries.flagger.app", appName, "-o",
		"jsonpath={.status.phase}/{.status.canaryWeight}/{.status.failedChecks}"); out != "Succeeded/0/0" {
		t.Errorf("flagger.app status phase/canaryWeight/failedChecks %q after the promotion", out)
	}
	if got := l.during(func() { time.Sleep(time.Second) }); got["2.0.0"] == 0 || len(got) != 1 {
		t.Errorf("after promotion, answers by version %v; want 2.0.0 only", got)
	}

	// v3, 30% errors: rolled back on the flagger.app template.
	start = time.Now()
	a.deploy("3.0.0", map[string]string{"ERROR_RATE": "0.3"})
	st = a.waitPhase(v1alpha1.PhaseFailed, 90*time.Second)
	t.Logf("v3 rolled back in %s: %s", time.Since(start).Round(100*time.Millisecond), st.Message)
	if got := sample(st.LastVerdict, "error-rate/canary"); !strings.Contains(got, "(max 1) fail") || !strings.Contains(got, "from prometheus") {
		t.Errorf("v3's last verdict %q: the template's error rate %q did not fail", st.LastVerdict, got)
	}
	if out := a.kubectl("", "-n", a.ns, "get", "canaries.flagger.app", appName, "-o", "jsonpath={.status.phase}/{.status.canaryWeight}"); out != "Failed/0" {
		t.Errorf("flagger.app status phase/canaryWeight %q after the rollback", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && countText(slack.received(), "Rolling back") == 0 {
		time.Sleep(200 * time.Millisecond)
	}
	if countText(slack.received(), "Rolling back podinfo."+a.ns) == 0 {
		t.Errorf("the flagger.app AlertProvider got no rollback alert: %v", texts(slack.received()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := a.e.c.Kubectl(ctx, "", "get", "canaries.serin.dev", appName, "-n", a.ns, "-o", "jsonpath={.metadata.ownerReferences[0].kind}"); err != nil || out != "Canary" {
		t.Errorf("the release did not run from the flagger.app Canary's mirror: owner %q (%v)", out, err)
	}
}
