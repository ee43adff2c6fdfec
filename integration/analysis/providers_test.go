package analysis

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/providers"
)

// testInfluxRelease: a release judged by a MetricTemplate of type
// influxdb (InfluxQL on the real InfluxDB, its credentials in a Secret
// bound to it) and by Flagger's inline metrics[].query on the Canary's
// metricsServer: promoted while the canary's error rate in InfluxDB is
// low, rolled back when it is high.
func (e *env) testInfluxRelease(t *testing.T) {
	base := providers.StartInfluxDB(t, "metrics")
	address := base + "/?db=metrics"
	ns := e.c.Namespace(t)
	e.serin.AllowSecrets(t, ns)
	a := &app{e: e, t: t, ns: ns, replicas: 2}
	a.apply(fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: influx, annotations: {serin.dev/allowed-addresses: %[1]q}}
stringData: {username: %[2]q, password: %[3]q}
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: error-rate}
spec:
  provider: {type: influxdb, address: %[1]q, secretRef: {name: influx}}
  query: |
    SELECT last("rate") FROM "errors" WHERE "workload" = '{{ target }}' AND "namespace" = '{{ namespace }}'
`, address, providers.InfluxAdmin, providers.InfluxAdminPassword))
	a.applyCanary(fmt.Sprintf(`
metricsServer: %q
progressDeadlineSeconds: 60
analysis:
  interval: 2s
  threshold: 2
  stepWeight: 25
  maxWeight: 50
  metrics:
  - name: error-rate
    templateRef: {name: error-rate}
    thresholdRange: {max: 5}
  - name: prometheus-up
    query: sum(vector(1))
    thresholdRange: {min: 1}
`, e.prom.URL))
	rate := func(v float64) {
		providers.InfluxWrite(t, base, "metrics", fmt.Sprintf("errors,workload=%s,namespace=%s rate=%g %d",
			v1alpha1.CopyName(appName), ns, v, time.Now().Unix()))
	}
	rate(1)
	a.deploy("1.0.0", nil)
	w := a.watch()
	a.waitPhase(v1alpha1.PhaseInitialized, time.Minute)

	start := time.Now()
	a.deploy("2.0.0", nil)
	st := a.waitPhase(v1alpha1.PhaseSucceeded, 90*time.Second)
	if st.FailedChecks != 0 {
		t.Errorf("%d failed checks", st.FailedChecks)
	}
	passed := false
	for _, s := range w.since(start) {
		v := s.status.LastVerdict
		if strings.HasPrefix(v, "Promote") && strings.Contains(sample(v, "error-rate/canary"), "from influxdb") &&
			strings.Contains(sample(v, "prometheus-up/canary"), "pass") {
			passed = true
		}
	}
	if !passed {
		t.Error("no check passed on both the InfluxDB template and the inline query")
	}

	rate(50)
	a.deploy("3.0.0", nil)
	st = a.waitPhase(v1alpha1.PhaseFailed, 90*time.Second)
	if st.CanaryWeight != 0 {
		t.Errorf("failed at weight %d", st.CanaryWeight)
	}
	if !a.hasEvent("error-rate", "50") {
		t.Errorf("no event names the error rate 50: %q", a.events())
	}
}
