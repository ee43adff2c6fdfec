// Package podsim makes pods in the runtime-less local test cluster serve traffic.
//
// The local cluster runs the real control plane with kwok in place of kubelets: pods
// become Running and Ready and get an address from a loopback range (a 127.N.0.0/16),
// but no process runs behind them. podsim watches Pods and, for every Ready pod with a loopback pod IP,
// listens on podIP:containerPort and serves a small demo application whose behaviour
// is read from the pod spec. On Linux the whole of 127.0.0.0/8 is routed to the
// loopback interface, so any of these addresses can be bound without configuration.
//
// The package owns three things:
//
//   - the plan: a pure translation of a *corev1.Pod into what to serve (ports and
//     their protocol, identity used for metrics, and the behaviour read from env);
//   - the per-pod server ([PodServer]): HTTP (podinfo-like endpoints and Prometheus
//     metrics on a per-pod registry, every request counted both as Istio's
//     destination reporter and as a Linkerd proxy's inbound side count it, or only
//     as Linkerd's for a pod annotated linkerd.io/inject: enabled) and gRPC
//     (grpc.health.v1, reflection and the grpc.testing.TestService echo service);
//   - the runner ([Simulator], [Run]): a Pod informer that starts, restarts and stops
//     per-pod servers as pods become Ready, change, or go away.
//
// Behaviour is taken from the pod's app container: the first container that declares
// a port (or the first container). Its env is resolved as the kubelet does, once when
// the pod is first served and never again for the pod's life: literal values and
// values from ConfigMaps and Secrets (env valueFrom configMapKeyRef/secretKeyRef,
// envFrom configMapRef/secretRef with their prefix), envFrom first in order, then env
// entries, a later one overriding an earlier one. Any variable below may come from a
// ConfigMap or Secret.
//
//	env                 meaning                                           default
//	VERSION             version reported in bodies, headers and metrics   image tag, else "latest"
//	MESSAGE             message in the "/" body                           "greetings from <pod>"
//	ERROR_RATE          fraction of app requests that fail, 0..1          0
//	ERROR_HTTP_CODE     HTTP status of a failed request, 400..599         500
//	ERROR_GRPC_CODE     gRPC code of a failed call (UNAVAILABLE or 14)    INTERNAL
//	LATENCY_MS          delay added to every app request, milliseconds    0
//	LATENCY_JITTER_MS   extra uniform delay in [0, jitter), milliseconds  0
//
// A pod whose env cannot be parsed is not served at all (as a crashing container
// would not be), and the runner logs why. A pod whose app container refers to a
// ConfigMap, Secret or key that does not exist, and is not optional, is not served
// either (the kubelet's CreateContainerConfigError, or a volume it cannot mount); the
// runner retries it every refresh period until the object appears. Optional ones
// that are missing are skipped.
//
// The configMap, secret and projected volumes (their configMap and secret sources,
// items mapped to their paths) that the app container mounts are read when the pod
// is first served and read again every [Options].ConfigRefresh (a second by default;
// the kubelet takes about a minute), by the names in the pod spec, with one GET per
// object: podsim keeps no ConfigMap or Secret cache. An object that cannot be read
// keeps its last content; a mount with a subPath never changes after the start, as
// with the kubelet. The API access volume (a projected volume with a service account
// token, kube-api-access-*) is credentials, not configuration: it is left out.
//
// Ports: a TCP container port whose name starts with "grpc" serves gRPC, every other
// TCP port serves HTTP/1.1 and cleartext HTTP/2. Probe-like endpoints (/healthz,
// /readyz, /metrics, grpc.health.v1, reflection) are never delayed, failed or counted.
// Metrics of gRPC calls are exposed on the pod's HTTP ports; a pod with only gRPC
// ports can name an extra port in the standard "prometheus.io/port" annotation and
// podsim serves the HTTP app (including /metrics) there too.
//
// Every HTTP response carries the headers X-Pod, X-Namespace, X-Version and X-Workload,
// and every gRPC app call the same keys in lower case as header and trailer metadata,
// so a client can tell which pod and version answered. The configuration is reported
// the same way: X-Config-Env lists the variables whose value came from a ConfigMap or
// Secret as NAME=value, and X-Config-Files the current files of the config mounts as
// mountPath/path=content (content trimmed of surrounding space and cut at 100 bytes);
// both sorted, joined by ",", with control characters as spaces and bytes outside
// ASCII as '?', and left out when empty.
//
// Tests wait for pods to be served with [Simulator.WaitFor] or read
// [Simulator.Serving]; a single pod can be served without a cluster with
// [NewPodServer].
//
// podsim never reads EndpointSlices: the API server refuses loopback endpoint
// addresses, so pods are the only source of truth.
package podsim
