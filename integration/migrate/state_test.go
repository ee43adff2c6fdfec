package migrate

import (
	"fmt"
	"strings"
	"time"
)

// targetDeployment is the user's manifest of podinfo, as their Git holds
// it.
func targetDeployment(version string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  labels: {app: podinfo}
spec:
  replicas: %[2]d
  selector:
    matchLabels: {app: podinfo}
  template:
    metadata:
      labels: {app: podinfo}
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:%[1]s
        env: [{name: VERSION, value: "%[1]s"}]
        envFrom: [{configMapRef: {name: podinfo-config}}]
        ports:
        - {name: http, containerPort: 9898}
        - {name: grpc, containerPort: 9999}
`, version, replicas)
}

// flaggerCanary is the Canary as Flagger's guides write it for the
// Kubernetes provider, on the gRPC port.
const flaggerCanary = `apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
spec:
  provider: kubernetes
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  autoscalerRef: {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: podinfo}
  progressDeadlineSeconds: 60
  service:
    port: 9999
    targetPort: grpc
    portName: grpc
    appProtocol: grpc
  analysis:
    interval: 1s
    threshold: 2
    maxWeight: 50
    stepWeight: 50
`

// flaggerObjects are what Flagger makes for the Canary (owned by it, uid
// %[1]s): the primary Deployment, with its pod template copied from the
// target's (labels renamed, flagger-id, the ConfigMap copy), its HPA, the
// apex, primary and canary Services and, with the Istio provider, a
// VirtualService. A DestinationRule and the user's HPA that Flagger does
// not own come along.
const flaggerObjects = `apiVersion: v1
kind: ConfigMap
metadata:
  name: podinfo-config-primary
  ownerReferences: [%[2]s]
data: {color: blue}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo-primary
  labels: {app: podinfo-primary}
  ownerReferences: [%[2]s]
spec:
  replicas: 2
  selector:
    matchLabels: {app: podinfo-primary}
  template:
    metadata:
      labels: {app: podinfo-primary}
      annotations: {flagger-id: 4bd4ad3e-6f0c-4d5b-9a0e-5c8e1f6f0b0e}
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:6.0.1
        env: [{name: VERSION, value: "6.0.1"}]
        envFrom: [{configMapRef: {name: podinfo-config-primary}}]
        ports:
        - {name: http, containerPort: 9898}
        - {name: grpc, containerPort: 9999}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: podinfo-primary
  ownerReferences: [%[2]s]
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo-primary}
  minReplicas: 2
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 99}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: podinfo
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  minReplicas: 2
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 99}}
---
apiVersion: v1
kind: Service
metadata:
  name: podinfo
  labels: {app: podinfo}
  ownerReferences: [%[2]s]
spec:
  selector: {app: podinfo-primary}
  ports:
  - {name: grpc, port: 9999, targetPort: grpc, appProtocol: grpc}
---
apiVersion: v1
kind: Service
metadata:
  name: podinfo-primary
  labels: {app: podinfo-primary}
  ownerReferences: [%[2]s]
spec:
  selector: {app: podinfo-primary}
  ports:
  - {name: grpc, port: 9999, targetPort: grpc, appProtocol: grpc}
---
apiVersion: v1
kind: Service
metadata:
  name: podinfo-canary
  labels: {app: podinfo-canary}
  ownerReferences: [%[2]s]
spec:
  selector: {app: podinfo}
  ports:
  - {name: grpc, port: 9999, targetPort: grpc, appProtocol: grpc}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: podinfo
  ownerReferences: [%[2]s]
spec:
  hosts: [podinfo]
  http:
  - route:
    - destination: {host: podinfo-primary}
      weight: 100
    - destination: {host: podinfo-canary}
      weight: 0
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: podinfo-others
spec:
  host: podinfo
`

// flaggerController stands in for Flagger's controller Deployment.
const flaggerController = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: flagger
  labels: {app.kubernetes.io/name: flagger}
spec:
  replicas: 1
  selector:
    matchLabels: {app: flagger}
  template:
    metadata:
      labels: {app: flagger}
    spec:
      containers:
      - {name: flagger, image: ghcr.io/fluxcd/flagger:1.38.0}
`

// flaggerState builds, with kubectl, what Flagger leaves after a
// successful release of podinfo 6.0.1: the target scaled to zero, the
// primary serving, the Canary Succeeded.
func (e *env) flaggerState() {
	e.t.Helper()
	e.kubectl("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: podinfo-config}\ndata: {color: blue}\n", "apply", "-f", "-")
	e.kubectl(targetDeployment("6.0.1", 2), "apply", "-f", "-")
	e.kubectl("", "scale", "deployment", "podinfo", "--replicas=0")
	e.kubectl(flaggerCanary, "apply", "-f", "-")
	uid := e.jsonpath("canaries.flagger.app", "podinfo", "{.metadata.uid}")
	owner := fmt.Sprintf("{apiVersion: flagger.app/v1beta1, kind: Canary, name: podinfo, uid: %s, controller: true, blockOwnerDeletion: true}", uid)
	e.kubectl(fmt.Sprintf(flaggerObjects, uid, owner), "apply", "-f", "-")
	now := time.Now().UTC().Format(time.RFC3339)
	status := fmt.Sprintf(`{"status":{"phase":"Succeeded","canaryWeight":0,"failedChecks":0,"iterations":0,
"lastAppliedSpec":"5d8f7c9b","lastPromotedSpec":"5d8f7c9b","lastTransitionTime":%q,
"conditions":[{"type":"Promoted","status":"True","reason":"Succeeded","message":"Canary analysis completed successfully, promotion finished.","lastUpdateTime":%[1]q,"lastTransitionTime":%[1]q}]}}`, now)
	e.kubectl(strings.ReplaceAll(status, "\n", ""), "patch", "canaries.flagger.app", "podinfo", "--subresource=status", "--type=merge", "--patch-file=/dev/stdin")
	e.eventually(time.Minute, "the primary serves", func() (bool, string) {
		r := e.jsonpath("deployment", "podinfo-primary", "{.status.readyReplicas}")
		return r == "2", r
	})
}
