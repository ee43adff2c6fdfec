package podsim

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Protocol is what a pod port serves.
type Protocol string

// Protocols served by podsim; the values are the request_protocol label values Istio uses.
const (
	ProtocolHTTP Protocol = "http"
	ProtocolGRPC Protocol = "grpc"
)

// prometheusPortAnnotation is the conventional scrape-port annotation. podsim serves
// the HTTP app on it when it is not one of the declared container ports.
const prometheusPortAnnotation = "prometheus.io/port"

// Plan is everything podsim needs to serve one pod. It is computed from the pod alone
// by [PlanForPod]; two plans that are equal (reflect.DeepEqual) serve identically.
type Plan struct {
	UID      types.UID
	PodIP    string
	Identity Identity
	Behavior Behavior
	// Ports are sorted by port number.
	Ports []PortPlan
	// ConfigEnv lists the app container's variables whose value came from a
	// ConfigMap or Secret, as NAME=value, sorted.
	ConfigEnv []string
}

// PortPlan is one listening port of a pod.
type PortPlan struct {
	Name     string
	Port     int32
	Protocol Protocol
	// Container is the container declaring the port; empty for the extra metrics port.
	Container string
}

// Identity names the pod the way Istio's telemetry does.
type Identity struct {
	Pod       string
	Namespace string
	// Workload is the controlling workload's name (Deployment for ReplicaSet pods).
	Workload string
	// App and Version are the "app" and "version" labels, "unknown" when absent.
	App     string
	Version string
	// CanonicalService and CanonicalRevision follow Istio's canonical service labels.
	CanonicalService  string
	CanonicalRevision string
	// Mesh is whose proxy telemetry the pod exposes.
	Mesh Mesh
}

// Mesh is whose proxy telemetry a pod exposes.
type Mesh string

// The meshes podsim imitates.
const (
	// MeshAny exposes both Istio's and Linkerd's series for every request.
	MeshAny Mesh = ""
	// MeshLinkerd exposes Linkerd's series only: a pod meshed by Linkerd
	// has no Istio sidecar.
	MeshLinkerd Mesh = "linkerd"
)

// linkerdInjectAnnotation asks Linkerd's proxy injector for a proxy.
const linkerdInjectAnnotation = "linkerd.io/inject"

// Servable reports whether the runner should serve the pod now: it is Running, Ready,
// not terminating, not on the host network, and has a loopback pod IP. The reason is
// empty when the pod is servable.
func Servable(pod *corev1.Pod) (bool, string) {
	switch {
	case pod.DeletionTimestamp != nil:
		return false, "terminating"
	case pod.Status.Phase != corev1.PodRunning:
		return false, "phase " + string(pod.Status.Phase)
	case !podReady(pod):
		return false, "not ready"
	case pod.Spec.HostNetwork:
		return false, "host network"
	}
	ip, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil {
		return false, "no pod IP"
	}
	if !ip.IsLoopback() {
		return false, "pod IP is not a loopback address"
	}
	return true, ""
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PlanForPod computes what to serve for a pod from its literal env values. It does
// not look at readiness (see [Servable]); it fails when the pod declares nothing to
// serve or its env is invalid.
func PlanForPod(pod *corev1.Pod) (Plan, error) {
	app := appContainer(pod)
	if app == nil {
		return Plan{}, fmt.Errorf("pod %s/%s has no containers", pod.Namespace, pod.Name)
	}
	return PlanWithEnv(pod, LiteralEnv(app))
}

// PlanWithEnv is [PlanForPod] with the app container's environment already resolved
// (see [ResolveEnv]), ConfigMap and Secret values included.
func PlanWithEnv(pod *corev1.Pod, env ResolvedEnv) (Plan, error) {
	app := appContainer(pod)
	if app == nil {
		return Plan{}, fmt.Errorf("pod %s/%s has no containers", pod.Namespace, pod.Name)
	}
	behavior, err := BehaviorFromEnv(env.Values, app.Image, pod.Name)
	if err != nil {
		return Plan{}, fmt.Errorf("pod %s/%s container %s: %w", pod.Namespace, pod.Name, app.Name, err)
	}
	ports, err := portPlans(pod)
	if err != nil {
		return Plan{}, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return Plan{
		UID:       pod.UID,
		PodIP:     pod.Status.PodIP,
		Identity:  IdentityForPod(pod),
		Behavior:  behavior,
		Ports:     ports,
		ConfigEnv: env.FromConfig,
	}, nil
}

// appContainer is the first container declaring a port, else the first container.
func appContainer(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.Containers {
		if len(pod.Spec.Containers[i].Ports) > 0 {
			return &pod.Spec.Containers[i]
		}
	}
	if len(pod.Spec.Containers) == 0 {
		return nil
	}
	return &pod.Spec.Containers[0]
}

// ProtocolForPortName returns the protocol a port serves: names starting with "grpc"
// (Istio's naming convention: grpc, grpc-api, ...) serve gRPC, all others HTTP.
func ProtocolForPortName(name string) Protocol {
	if strings.HasPrefix(strings.ToLower(name), "grpc") {
		return ProtocolGRPC
	}
	return ProtocolHTTP
}

func portPlans(pod *corev1.Pod) ([]PortPlan, error) {
	var ports []PortPlan
	seen := map[int32]bool{}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue
			}
			if seen[p.ContainerPort] {
				return nil, fmt.Errorf("container port %d declared twice", p.ContainerPort)
			}
			seen[p.ContainerPort] = true
			ports = append(ports, PortPlan{
				Name:      p.Name,
				Port:      p.ContainerPort,
				Protocol:  ProtocolForPortName(p.Name),
				Container: c.Name,
			})
		}
	}
	if v, ok := pod.Annotations[prometheusPortAnnotation]; ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("annotation %s=%q is not a port number", prometheusPortAnnotation, v)
		}
		if !seen[int32(n)] {
			ports = append(ports, PortPlan{Name: "metrics", Port: int32(n), Protocol: ProtocolHTTP})
		}
	}
	if len(ports) == 0 {
		return nil, fmt.Errorf("no TCP container ports")
	}
	slices.SortFunc(ports, func(a, b PortPlan) int { return int(a.Port) - int(b.Port) })
	return ports, nil
}
