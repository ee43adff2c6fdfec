package harness

import "fmt"

// PodinfoDeployment is the demo app every scenario releases: a Deployment
// "podinfo" opted in with serin.dev/canary, whose pods podsim serves (http
// on 9898 with Istio-style /metrics, gRPC on 9999). extraEnv is appended
// to the env list as YAML flow items, e.g. `, {name: ERROR_RATE, value: "0.3"}`.
func PodinfoDeployment(namespace, version string, replicas int, extraEnv string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: %[1]s
  annotations:
    serin.dev/canary: enabled
spec:
  replicas: %[4]d
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
`, namespace, version, extraEnv, replicas)
}
