package podsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/serin-dev/serin/integration/cluster"
)

// TestMain starts the real local cluster unless -short is given; the unit tests of
// this package run either way.
func TestMain(m *testing.M) {
	cluster.Main(m, cluster.Options{Nodes: 2})
}

// podinfoManifest is the Deployment the end-to-end test applies; an empty version
// leaves the VERSION env out, so the version comes from the image tag.
func podinfoManifest(replicas int, tag, version string) string {
	env := ""
	if version != "" {
		env = fmt.Sprintf("\n        env:\n        - name: VERSION\n          value: %q", version)
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  replicas: %d
  selector:
    matchLabels:
      app: podinfo
  template:
    metadata:
      labels:
        app: podinfo
    spec:
      containers:
      - name: podinfo
        image: ghcr.io/stefanprodan/podinfo:%s%s
        ports:
        - name: http
          containerPort: 9898
        - name: grpc
          containerPort: 9999
`, replicas, tag, env)
}

// TestClusterDeployment drives a Deployment with the built kubectl only, through the
// real API server, controller-manager, scheduler and kwok, and checks over the
// network that podsim serves exactly the pods the cluster runs.
func TestClusterDeployment(t *testing.T) {
	c := cluster.Get(t)
	ns := c.Namespace(t)
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	sim, _ := runSim(t, cs, Options{Namespaces: []string{ns}, ShutdownTimeout: time.Second})
	e := &e2e{t: t, c: c, ns: ns, cidr: netip.MustParsePrefix(c.PodCIDR)}

	// Apply: three Ready pods on loopback IPs of the cluster's pod range answer HTTP
	// and gRPC, and count the request in their metrics.
	e.kubectl(podinfoManifest(3, "6.0.1", "v1"), "apply", "--filename=-")
	e.rolledOut()
	waitServing(t, sim, "three v1 pods", servedAs(3, "v1"))
	pods := e.readyPods(3)
	for _, p := range pods {
		e.checkAnswers(p, "v1")
		fams := scrape(t, hostPort(p.Status.PodIP, 9898))
		if got := counterSum(fams[MetricRequestsTotal], map[string]string{"destination_workload": "podinfo", "destination_workload_namespace": ns}); got != 1 {
			t.Errorf("%s: %s for workload podinfo = %v, want 1", p.Name, MetricRequestsTotal, got)
		}
	}

	// Delete a pod. With the nodes cordoned its replacement stays Pending, so nothing
	// else can take over the address: it must refuse connections.
	e.kubectl("", "cordon", "--selector=type=kwok")
	t.Cleanup(func() { _, _ = c.Kubectl(context.Background(), "", "uncordon", "--selector=type=kwok") })
	victim := pods[0]
	e.kubectl("", "delete", "pod", victim.Name, "--timeout=1m")
	e.waitRefused(hostPort(victim.Status.PodIP, 9898), hostPort(victim.Status.PodIP, 9999))
	e.kubectl("", "uncordon", "--selector=type=kwok")
	e.rolledOut()
	waitServing(t, sim, "a replacement pod", servedAs(3, "v1"))
	replaced := e.readyPods(3)
	if added := newNames(pods, replaced); len(added) != 1 || slices.ContainsFunc(replaced, func(p corev1.Pod) bool { return p.Name == victim.Name }) {
		t.Errorf("after deleting %s the pods are %v, want one replacement", victim.Name, podNames(replaced))
	}
	for _, p := range replaced {
		e.checkAnswers(p, "v1")
	}

	// Scale to zero: no pod is left and every address refuses connections.
	e.kubectl("", "scale", "deployment/podinfo", "--replicas=0")
	e.rolledOut()
	e.waitNoPods()
	waitServing(t, sim, "nothing after scaling to zero", servingNothing)
	for _, p := range replaced {
		assertRefused(t, hostPort(p.Status.PodIP, 9898), hostPort(p.Status.PodIP, 9999))
	}

	// Scale to five.
	e.kubectl("", "scale", "deployment/podinfo", "--replicas=5")
	e.rolledOut()
	waitServing(t, sim, "five v1 pods", servedAs(5, "v1"))
	five := e.readyPods(5)
	for _, p := range five {
		e.checkAnswers(p, "v1")
	}

	// A new image without VERSION rolls out through the controller-manager: every pod
	// answers with the image tag as its version, and no old pod answers any more
	// (a new pod may have been given an old pod's address).
	e.kubectl(podinfoManifest(5, "6.1.0", ""), "apply", "--filename=-")
	e.rolledOut()
	waitServing(t, sim, "five pods of the new image", servedAs(5, "6.1.0"))
	rolled := e.readyPods(5)
	if added := newNames(five, rolled); len(added) != 5 {
		t.Errorf("after the rollout the pods are %v; want five new ones", podNames(rolled))
	}
	for _, p := range rolled {
		if img := p.Spec.Containers[0].Image; img != "ghcr.io/stefanprodan/podinfo:6.1.0" {
			t.Errorf("%s runs %s", p.Name, img)
		}
		e.checkAnswers(p, "6.1.0")
	}
	old := podNames(five)
	for _, p := range five {
		e.checkNotAnsweredBy(old, hostPort(p.Status.PodIP, 9898), ProtocolHTTP)
		e.checkNotAnsweredBy(old, hostPort(p.Status.PodIP, 9999), ProtocolGRPC)
	}
	var rsList appsv1.ReplicaSetList
	e.kubectlJSON(&rsList, "get", "replicasets", "--selector=app=podinfo")
	var desired []string
	for _, rs := range rsList.Items {
		desired = append(desired, fmt.Sprintf("%s=%d/%d", rs.Spec.Template.Spec.Containers[0].Image, *rs.Spec.Replicas, rs.Status.ReadyReplicas))
	}
	slices.Sort(desired)
	if want := []string{"ghcr.io/stefanprodan/podinfo:6.0.1=0/0", "ghcr.io/stefanprodan/podinfo:6.1.0=5/5"}; !slices.Equal(desired, want) {
		t.Errorf("replica sets (image=replicas/ready) = %v, want %v", desired, want)
	}
}

// TestClusterFigures reports the cluster's start time and memory in a form a grep
// finds: lines starting with "FIGURE". Run it after the end-to-end test, so the
// memory is that of a cluster that has done some work.
func TestClusterFigures(t *testing.T) {
	c := cluster.Get(t)
	if c.StartDuration <= 0 {
		t.Errorf("StartDuration = %v", c.StartDuration)
	}
	t.Logf("FIGURE cluster_start_seconds=%.2f", c.StartDuration.Seconds())
	rss := c.MemoryRSS()
	names := make([]string, 0, len(rss))
	var total int64
	for name, b := range rss {
		names = append(names, name)
		total += b
	}
	slices.Sort(names)
	if want := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}; !slices.Equal(names, want) {
		t.Errorf("memory reported for %v, want %v", names, want)
	}
	const mib = 1 << 20
	t.Logf("FIGURE cluster_rss_mib=%.1f", float64(total)/mib)
	for _, name := range names {
		t.Logf("FIGURE cluster_rss_mib_%s=%.1f", strings.ReplaceAll(name, "-", "_"), float64(rss[name])/mib)
	}
}

// e2e runs kubectl in one namespace and checks what the pods answer.
type e2e struct {
	t    *testing.T
	c    *cluster.Cluster
	ns   string
	cidr netip.Prefix
}

func (e *e2e) kubectl(stdin string, args ...string) string {
	e.t.Helper()
	out, err := e.c.Kubectl(e.t.Context(), stdin, append([]string{"--namespace=" + e.ns}, args...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *e2e) kubectlJSON(into any, args ...string) {
	e.t.Helper()
	out := e.kubectl("", append(args, "--output=json")...)
	if err := json.Unmarshal([]byte(out), into); err != nil {
		e.t.Fatalf("decode kubectl %s: %v", strings.Join(args, " "), err)
	}
}

func (e *e2e) rolledOut() {
	e.t.Helper()
	e.kubectl("", "rollout", "status", "deployment/podinfo", "--timeout=2m")
}

// readyPods returns the Deployment's pods that are not terminating, sorted by name,
// once there are n of them and all are Running and Ready on distinct loopback IPs
// inside the cluster's pod range.
func (e *e2e) readyPods(n int) []corev1.Pod {
	e.t.Helper()
	var problem string
	for deadline := time.Now().Add(time.Minute); ; {
		var list corev1.PodList
		e.kubectlJSON(&list, "get", "pods", "--selector=app=podinfo")
		var pods []corev1.Pod
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
		if problem = e.readyProblem(pods, n); problem == "" {
			return pods
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("waiting for %d ready pods: %s", n, problem)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *e2e) readyProblem(pods []corev1.Pod, n int) string {
	if len(pods) != n {
		return fmt.Sprintf("%d pods: %v", len(pods), podNames(pods))
	}
	seen := map[netip.Addr]string{}
	for _, p := range pods {
		if ok, why := Servable(&p); !ok {
			return fmt.Sprintf("pod %s: %s", p.Name, why)
		}
		ip := netip.MustParseAddr(p.Status.PodIP)
		if !ip.IsLoopback() || !e.cidr.Contains(ip) {
			return fmt.Sprintf("pod %s has IP %s, outside %s", p.Name, ip, e.cidr)
		}
		if other, dup := seen[ip]; dup {
			return fmt.Sprintf("pods %s and %s share IP %s", other, p.Name, ip)
		}
		seen[ip] = p.Name
	}
	return ""
}

func (e *e2e) waitNoPods() {
	e.t.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		var list corev1.PodList
		e.kubectlJSON(&list, "get", "pods", "--selector=app=podinfo")
		if len(list.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("pods left after scaling to zero: %v", podNames(list.Items))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkAnswers checks that the pod answers on its IP: GET /version over HTTP from
// this pod with the version, and the gRPC health service SERVING.
func (e *e2e) checkAnswers(p corev1.Pod, version string) {
	e.t.Helper()
	pod, got, err := httpAnswer(e.t.Context(), hostPort(p.Status.PodIP, 9898))
	if err != nil || pod != p.Name || got != version {
		e.t.Errorf("GET /version on %s (pod %s): answered by %q with version %q (%v), want version %q", p.Status.PodIP, p.Name, pod, got, err, version)
	}
	cc, err := grpc.NewClient(hostPort(p.Status.PodIP, 9999), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
	defer cancel()
	r, err := grpc_health_v1.NewHealthClient(cc).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err != nil || r.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		e.t.Errorf("gRPC health on %s (pod %s) = %v, %v", p.Status.PodIP, p.Name, r, err)
	}
}

// waitRefused waits until every addr refuses connections; podsim may trail the API
// server by a moment.
func (e *e2e) waitRefused(addrs ...string) {
	e.t.Helper()
	for _, a := range addrs {
		for deadline := time.Now().Add(30 * time.Second); ; {
			ok, err := refused(a)
			if ok {
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("%s still accepts connections (%v)", a, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// checkNotAnsweredBy checks that none of the old pods answers on addr: the connection
// is refused, or another pod answers.
func (e *e2e) checkNotAnsweredBy(old []string, addr string, proto Protocol) {
	e.t.Helper()
	if ok, _ := refused(addr); ok {
		return
	}
	var pod string
	var err error
	if proto == ProtocolGRPC {
		pod, err = grpcAnswer(e.t.Context(), addr)
	} else {
		pod, _, err = httpAnswer(e.t.Context(), addr)
	}
	switch {
	case err != nil:
		e.t.Errorf("%s accepts connections but does not answer: %v", addr, err)
	case slices.Contains(old, pod):
		e.t.Errorf("%s is still answered by the old pod %s", addr, pod)
	}
}

// httpAnswer asks addr for /version on a fresh connection and returns the answering
// pod (the X-Pod header) and the version in the body.
func httpAnswer(ctx context.Context, addr string) (pod, version string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/version", nil)
	if err != nil {
		return "", "", err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var v struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", "", fmt.Errorf("decode %q: %w", body, err)
	}
	return resp.Header.Get(HeaderPod), v.Version, nil
}

// grpcAnswer makes an echo call to addr and returns the answering pod (the x-pod
// header).
func grpcAnswer(ctx context.Context, addr string) (string, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var header metadata.MD
	if _, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Header(&header)); err != nil {
		return "", err
	}
	if v := header.Get(strings.ToLower(HeaderPod)); len(v) == 1 {
		return v[0], nil
	}
	return "", fmt.Errorf("no %s header in %v", HeaderPod, header)
}

// servedAs holds when exactly n pods are served, every one on its two ports with
// version v.
func servedAs(n int, v string) func([]PodAddr) bool {
	return func(addrs []PodAddr) bool {
		pods := map[string]bool{}
		for _, a := range addrs {
			if a.Version != v {
				return false
			}
			pods[a.Name] = true
		}
		return len(pods) == n && len(addrs) == 2*n
	}
}

func podNames(pods []corev1.Pod) []string {
	out := make([]string, 0, len(pods))
	for _, p := range pods {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

// newNames lists the pods of after that are not in before.
func newNames(before, after []corev1.Pod) []string {
	old := podNames(before)
	var out []string
	for _, p := range after {
		if !slices.Contains(old, p.Name) {
			out = append(out, p.Name)
		}
	}
	return out
}
