package traffic

import (
	"context"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/scheme"
	"github.com/serin-dev/serin/xds/build"
)

// mappingFixture is a namespace with three releases (a, b, c) and one
// pod of each track of a, plus an unrelated pod.
func mappingFixture(t *testing.T) *Controller {
	t.Helper()
	var objs []client.Object
	for _, name := range []string{"a", "b", "c"} {
		objs = append(objs,
			&v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
				Spec: v1alpha1.CanarySpec{TargetRef: v1alpha1.LocalObjectReference{Kind: "Deployment", Name: name}}},
			&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
				Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}}})
	}
	return newIndexed(t, objs...)
}

// newIndexed is a controller over a fake client with the cache indexes
// the controller reads.
func newIndexed(t *testing.T, objs ...client.Object) *Controller {
	t.Helper()
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	b := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...)
	for _, ix := range Indexes() {
		b = b.WithIndex(ix.Object, ix.Field, ix.Func)
	}
	return &Controller{Client: b.Build()}
}

func names(reqs []reconcile.Request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Name)
	}
	slices.Sort(out)
	return out
}

func object(name string, lbls map[string]string) *metav1.ObjectMeta {
	return &metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: lbls}
}

// TestEventsWakeOnlyTheirRelease: a pod, Deployment or Service event
// wakes the release it belongs to, not every release of its namespace.
func TestEventsWakeOnlyTheirRelease(t *testing.T) {
	ctx := context.Background()
	x := mappingFixture(t)
	for _, tc := range []struct {
		name string
		got  []reconcile.Request
		want []string
	}{
		{"stable pod", x.canariesOfPod(ctx, &corev1.Pod{ObjectMeta: *object("a-1", map[string]string{"app": "a"})}), []string{"a"}},
		{"canary pod", x.canariesOfPod(ctx, &corev1.Pod{ObjectMeta: *object("a-canary-1", map[string]string{"app": "a-canary"})}), []string{"a"}},
		{"unrelated pod", x.canariesOfPod(ctx, &corev1.Pod{ObjectMeta: *object("z-1", map[string]string{"app": "z"})}), nil},
		{"target", x.canariesOfDeployment(ctx, &appsv1.Deployment{ObjectMeta: *object("b", nil)}), []string{"b"}},
		{"canary copy", x.canariesOfDeployment(ctx, &appsv1.Deployment{ObjectMeta: *object("b-canary", nil)}), []string{"b"}},
		{"service", x.canariesOfService(ctx, &corev1.Service{ObjectMeta: *object("c", nil)}), []string{"c"}},
		{"primary service", x.canariesOfService(ctx, &corev1.Service{ObjectMeta: *object("c-primary", nil)}), []string{"c"}},
	} {
		if got := names(tc.got); !slices.Equal(got, tc.want) {
			t.Errorf("%s woke %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestReleasePods: the builder gets both tracks' pods, and a pod of
// another workload only when it reports the address of one of them.
func TestReleasePods(t *testing.T) {
	pod := func(name, app, ip string) client.Object {
		return &corev1.Pod{ObjectMeta: *object(name, map[string]string{"app": app}), Status: corev1.PodStatus{PodIP: ip}}
	}
	x := newIndexed(t, pod("a-1", "a", "10.0.0.1"), pod("a-canary-1", "a-canary", "10.0.0.2"),
		pod("b-1", "b", "10.0.0.3"), pod("b-2", "b", "10.0.0.1"), pod("a-2", "a", ""), pod("a-3", "a", "10.0.0.4"))
	pods, err := x.releasePods(context.Background(), "ns", build.Tracks{Stable: map[string]string{"app": "a"}, Canary: map[string]string{"app": "a-canary"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pods {
		got = append(got, p.Name)
	}
	slices.Sort(got)
	if want := []string{"a-1", "a-2", "a-3", "a-canary-1", "b-2"}; !slices.Equal(got, want) {
		t.Fatalf("pods %v, want %v", got, want)
	}
}
