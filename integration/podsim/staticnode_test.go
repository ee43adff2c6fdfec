package podsim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/integration/cluster"
)

// staticNodeTaint keeps the scheduler off the test's own nodes.
const staticNodeTaint = "serin.dev/static-test-node"

// staticNode is a Node of the real cluster that neither kwok nor a kubelet manages:
// the test plays the kubelet for the pods bound to it and sets their status itself,
// which gives it full control of readiness and pod IPs on a real API server.
type staticNode struct {
	t    *testing.T
	cs   kubernetes.Interface
	name string
	// top is the first address of the last /24 of the cluster's pod range; kwok hands
	// out pod IPs from the bottom of the range, so these are never given to its pods.
	top netip.Addr
}

// nextStaticIP numbers the addresses handed out to static pods in this process.
var nextStaticIP atomic.Uint32

// newStaticNode registers a tainted Node, keeps its lease renewed as a kubelet would
// (so the node lifecycle controller never marks its pods unready), and on cleanup
// removes the node and every pod bound to it.
func newStaticNode(t *testing.T, c *cluster.Cluster) *staticNode {
	t.Helper()
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	prefix, err := netip.ParsePrefix(c.PodCIDR)
	if err != nil || !prefix.Addr().Is4() || prefix.Bits() > 24 {
		t.Fatalf("pod CIDR %q: want an IPv4 range of /24 or wider (%v)", c.PodCIDR, err)
	}
	a := prefix.Masked().Addr().As4()
	hostBits := 32 - prefix.Bits()
	last := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | (1<<hostBits - 1)
	last &^= 0xff
	n := &staticNode{
		t:    t,
		cs:   cs,
		name: fmt.Sprintf("static-%08x", rand.Uint32()),
		top:  netip.AddrFrom4([4]byte{byte(last >> 24), byte(last >> 16), byte(last >> 8), 0}),
	}

	ctx := t.Context()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{"kubernetes.io/hostname": n.name}},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{{Key: staticNodeTaint, Effect: corev1.TaintEffectNoSchedule}}},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node: %v", err)
	}
	// The node controllers annotate and taint new nodes, hence the retries.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := cs.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		cur.Status.Conditions = []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "TestKubelet",
			LastHeartbeatTime: now, LastTransitionTime: now,
		}}
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("set node status: %v", err)
	}

	leases := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: n.name},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(n.name),
			LeaseDurationSeconds: ptr.To[int32](40),
			RenewTime:            &metav1.MicroTime{Time: time.Now()},
		},
	}
	if _, err := leases.Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node lease: %v", err)
	}
	renewCtx, stopRenew := context.WithCancel(context.Background())
	var renewer sync.WaitGroup
	renewer.Go(func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-tick.C:
			}
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				l, err := leases.Get(renewCtx, n.name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
				_, err = leases.Update(renewCtx, l, metav1.UpdateOptions{})
				return err
			})
			if err != nil && renewCtx.Err() == nil {
				t.Logf("renew lease of node %s: %v", n.name, err)
			}
		}
	})

	t.Cleanup(func() {
		stopRenew()
		renewer.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// No kubelet finishes these pods' graceful deletion: remove them outright.
		pods, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.name})
		if err != nil {
			t.Errorf("list pods on node %s: %v", n.name, err)
			pods = &corev1.PodList{}
		}
		for _, p := range pods.Items {
			if err := cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete pod %s/%s: %v", p.Namespace, p.Name, err)
			}
		}
		if err := leases.Delete(ctx, n.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete node lease: %v", err)
		}
		if err := cs.CoreV1().Nodes().Delete(ctx, n.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete node: %v", err)
		}
	})
	return n
}

// nextIP returns an address of the top /24 of the pod range not handed out before in
// this process (wrapping after 254).
func (n *staticNode) nextIP() string {
	a := n.top.As4()
	a[3] = byte(1 + (nextStaticIP.Add(1)-1)%254)
	return netip.AddrFrom4(a).String()
}

// createPod creates a podinfo-like pod bound to the node, still Pending. Its app
// container declares http 9898 and grpc 9999.
func (n *staticNode) createPod(ns, name string, mods ...func(*corev1.Pod)) *corev1.Pod {
	n.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "podinfo"}},
		Spec: corev1.PodSpec{
			NodeName: n.name,
			Containers: []corev1.Container{{
				Name:  "podinfo",
				Image: "ghcr.io/stefanprodan/podinfo:6.0.1",
				Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: 9898, Protocol: corev1.ProtocolTCP},
					{Name: "grpc", ContainerPort: 9999, Protocol: corev1.ProtocolTCP},
				},
			}},
			AutomountServiceAccountToken: ptr.To(false),
		},
	}
	for _, m := range mods {
		m(p)
	}
	created, err := n.cs.CoreV1().Pods(ns).Create(n.t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		n.t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	return created
}

// setStatus reports the pod Running on ip, Ready or not, as the kubelet would.
func (n *staticNode) setStatus(pod *corev1.Pod, ip string, ready bool) {
	n.t.Helper()
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	pods := n.cs.CoreV1().Pods(pod.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := pods.Get(n.t.Context(), pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP = ip
		p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		p.Status.HostIP = "127.0.0.1"
		p.Status.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
		if p.Status.StartTime == nil {
			p.Status.StartTime = &now
		}
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReady, Status: cond, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: cond, LastTransitionTime: now},
		}
		_, err = pods.UpdateStatus(n.t.Context(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		n.t.Fatalf("set status of pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

// runningPod creates a pod bound to the node and reports it Running and Ready on ip.
func (n *staticNode) runningPod(ns, name, ip string, mods ...func(*corev1.Pod)) *corev1.Pod {
	n.t.Helper()
	p := n.createPod(ns, name, mods...)
	n.setStatus(p, ip, true)
	return p
}
