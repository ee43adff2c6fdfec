package release

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

const deploymentTmpl = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: %[1]s
  annotations:
    serin.dev/canary: enabled
spec:
  replicas: 3
  selector:
    matchLabels: {app: podinfo}
  template:
    metadata:
      labels: {app: podinfo}
    spec:
      containers:
      - name: app
        image: ghcr.io/stefanprodan/podinfo:%[2]s
        env: [{name: VERSION, value: "%[2]s"}%[3]s]
        ports:
        - {name: http, containerPort: 9898}
        - {name: grpc, containerPort: 9999}
`

const canaryTmpl = `apiVersion: serin.dev/v1alpha1
kind: Canary
metadata:
  name: podinfo
  namespace: %[1]s
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  progressDeadlineSeconds: 60
  service: {port: 9999, appProtocol: grpc}
  analysis:
    interval: 1s
    threshold: 2
    stepWeight: 10
    maxWeight: 50
`

func TestSmokePromotion(t *testing.T) {
	c := cluster.Get(t)
	ns := c.Namespace(t)
	runPodsim(t, c, ns)
	s := harness.Install(t, c, harness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := c.Kubectl(ctx, fmt.Sprintf(deploymentTmpl, ns, "6.0.0", "")+"---\n"+fmt.Sprintf(canaryTmpl, ns), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, c, ns, "Initialized")
	conn := harness.XDSClient(t, s.XDSAddress(), "smoke", "podinfo."+ns+":9999")
	tally := harness.Send(ctx, conn, 200)
	t.Logf("v1 traffic: %+v", tally)
	if _, err := c.Kubectl(ctx, fmt.Sprintf(deploymentTmpl, ns, "6.0.1", ""), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, c, ns, "Succeeded")
	tally = harness.Send(ctx, conn, 200)
	t.Logf("after promotion: %+v", tally)
	out, _ := c.Kubectl(ctx, "", "get", "events", "-n", ns, "--sort-by=.metadata.creationTimestamp")
	t.Log(out)
}

func waitPhase(t *testing.T, c *cluster.Cluster, ns, phase string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	last := ""
	for time.Now().Before(deadline) {
		out, _ := c.Kubectl(context.Background(), "", "get", "canary", "podinfo", "-n", ns, "-o", "jsonpath={.status.phase} {.status.canaryWeight} {.status.message}")
		if out != last {
			t.Logf("%s canary: %s", time.Now().Format("15:04:05.000"), out)
			last = out
		}
		if len(out) >= len(phase) && out[:len(phase)] == phase {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("phase %s not reached; last %q", phase, last)
}
