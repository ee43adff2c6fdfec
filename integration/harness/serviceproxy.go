package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// Endpoint is one address behind a Service port.
type Endpoint struct {
	Pod  string
	IP   string
	Port int32
	// Ready endpoints take traffic.
	Ready bool
}

// ServiceEndpoints are the endpoints of one port of svc, worked out the
// way the EndpointSlice controller works them out: the pods of the
// Service's namespace that its selector matches (none for a Service
// without a selector), that have an IP and are neither finished nor being
// deleted, ready when their Ready condition is true, on the target port
// resolved against their container ports (by name for a named port).
// The local cluster cannot publish them as EndpointSlices: the API server
// refuses loopback endpoint addresses, and pods there have nothing else.
// Sorted by pod name.
func ServiceEndpoints(ctx context.Context, cs kubernetes.Interface, svc *corev1.Service, port corev1.ServicePort) ([]Endpoint, error) {
	if len(svc.Spec.Selector) == 0 {
		return nil, nil
	}
	pods, err := cs.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		return nil, err
	}
	var out []Endpoint
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		target, ok := targetPort(p, port)
		if !ok {
			continue
		}
		out = append(out, Endpoint{Pod: p.Name, IP: p.Status.PodIP, Port: target, Ready: podReady(p)})
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.Pod, b.Pod) })
	return out, nil
}

// targetPort resolves a Service port's target port on a pod.
func targetPort(p *corev1.Pod, sp corev1.ServicePort) (int32, bool) {
	proto := sp.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	if sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "" {
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == sp.TargetPort.StrVal && (cp.Protocol == proto || cp.Protocol == "" && proto == corev1.ProtocolTCP) {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	}
	if sp.TargetPort.IntVal == 0 {
		return sp.Port, true
	}
	return sp.TargetPort.IntVal, true
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ServiceProxy stands in for kube-proxy, which the local cluster does not
// run, for one Service: it listens on the Service's cluster IP and port
// and forwards every TCP connection to one of the ready endpoints of that
// port (ServiceEndpoints, read again for every connection), round robin.
// Cluster IPs and pod IPs of the local cluster are loopback addresses
// (cluster.ServiceCIDRFor); the proxy refuses any other.
type ServiceProxy struct {
	// Addr is where it listens: the Service's clusterIP:port.
	Addr string

	cs        kubernetes.Interface
	namespace string
	name      string
	port      corev1.ServicePort
	ln        net.Listener
	wg        sync.WaitGroup

	mu        sync.Mutex
	next      int
	forwarded map[string]int
}

// ProxyService listens on the cluster IP and first port of the Service
// namespace/name until the test ends.
func ProxyService(t testing.TB, cs kubernetes.Interface, namespace, name string) *ServiceProxy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := cs.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || !ip.IsLoopback() || len(svc.Spec.Ports) == 0 {
		t.Fatalf("service %s/%s: cluster IP %q is not a loopback address, or no port", namespace, name, svc.Spec.ClusterIP)
	}
	port := svc.Spec.Ports[0]
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(int(port.Port)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &ServiceProxy{Addr: addr, cs: cs, namespace: namespace, name: name, port: port, ln: ln, forwarded: map[string]int{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

// Forwarded counts the connections forwarded so far, by pod.
func (p *ServiceProxy) Forwarded() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.forwarded))
	for k, v := range p.forwarded {
		out[k] = v
	}
	return out
}

func (p *ServiceProxy) serve() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(conn)
		}()
	}
}

// forward connects conn to the next ready endpoint; with none, it closes
// conn, as kube-proxy rejects connections to a Service without endpoints.
func (p *ServiceProxy) forward(conn net.Conn) {
	defer conn.Close()
	ep, err := p.pick()
	if err != nil {
		return
	}
	upstream, err := net.DialTimeout("tcp", net.JoinHostPort(ep.IP, strconv.Itoa(int(ep.Port))), 5*time.Second)
	if err != nil {
		return
	}
	defer upstream.Close()
	p.mu.Lock()
	p.forwarded[ep.Pod]++
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if c, ok := dst.(*net.TCPConn); ok {
			_ = c.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(upstream, conn)
	go pipe(conn, upstream)
	<-done
	<-done
}

// pick reads the Service and its endpoints and picks the next ready one.
func (p *ServiceProxy) pick() (Endpoint, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	svc, err := p.cs.CoreV1().Services(p.namespace).Get(ctx, p.name, metav1.GetOptions{})
	if err != nil {
		return Endpoint{}, err
	}
	eps, err := ServiceEndpoints(ctx, p.cs, svc, p.port)
	if err != nil {
		return Endpoint{}, err
	}
	eps = slices.DeleteFunc(eps, func(e Endpoint) bool {
		ip, err := netip.ParseAddr(e.IP)
		return !e.Ready || err != nil || !ip.IsLoopback()
	})
	if len(eps) == 0 {
		return Endpoint{}, errors.New("no ready endpoints")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	return eps[p.next%len(eps)], nil
}

// String names the proxy in test messages.
func (p *ServiceProxy) String() string {
	return fmt.Sprintf("%s/%s at %s", p.namespace, p.name, p.Addr)
}
