package harness

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/integration/cluster"
)

// InstallIstioCRDs applies the CRDs that ship in istio.io/api (the version
// in serin's go.mod) and makes Istio's root namespace.
func InstallIstioCRDs(t testing.TB, c *cluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	applyCRDs(ctx, t, c, IstioCRDPath(t), "envoyfilters.networking.istio.io", "gateways.networking.istio.io", "virtualservices.networking.istio.io")
	if _, err := c.Kubectl(ctx, "", "create", "namespace", "istio-system"); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatal(err)
	}
}

// IstioCRDPath finds Istio's CRD YAML in the module cache.
func IstioCRDPath(t testing.TB) string {
	t.Helper()
	dir, err := cluster.ModuleDir("istio.io/api")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml")
}

// MirrorPodsToMesh registers the ready pods of namespace ns with Istio's
// control plane as WorkloadEntries (address and labels of the pod), until
// the test ends, so that istiod's endpoints for the namespace's Services
// are the pods. A real cluster needs none of this: istiod reads
// EndpointSlices there. Here pods have loopback addresses (podsim serves
// them on this machine), which the API server refuses in EndpointSlices;
// Kubernetes Services select WorkloadEntries by the same labels.
func MirrorPodsToMesh(t testing.TB, c *cluster.Cluster, ns string) {
	t.Helper()
	kube, err := Client(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if err := mirrorPods(ctx, kube, ns); err != nil && ctx.Err() == nil {
				t.Logf("mirror pods to WorkloadEntries: %v", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// mirrorPods makes the namespace's WorkloadEntries the ready pods.
func mirrorPods(ctx context.Context, kube client.Client, ns string) error {
	var pods corev1.PodList
	if err := kube.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		return err
	}
	want := map[string]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil && podReady(p) {
			want[p.Name] = p
		}
	}
	var wes networkingv1alpha3.WorkloadEntryList
	if err := kube.List(ctx, &wes, client.InNamespace(ns)); err != nil {
		return err
	}
	have := map[string]bool{}
	for _, we := range wes.Items {
		p := want[we.Name]
		if p == nil || we.Spec.Address != p.Status.PodIP {
			if err := kube.Delete(ctx, we); client.IgnoreNotFound(err) != nil {
				return err
			}
			continue
		}
		have[we.Name] = true
	}
	for name, p := range want {
		if have[name] {
			continue
		}
		we := &networkingv1alpha3.WorkloadEntry{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: p.Labels}}
		we.Spec.Address = p.Status.PodIP
		we.Spec.Labels = p.Labels
		if err := kube.Create(ctx, we); client.IgnoreAlreadyExists(err) != nil {
			return err
		}
	}
	return nil
}
