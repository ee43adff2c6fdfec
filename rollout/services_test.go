package rollout

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func servicesTarget() *appsv1.Deployment {
	sel := map[string]string{"app": "podinfo"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "podinfo", "version": "v2"}}},
		},
	}
}

func servicesSpec() *v1alpha1.CanarySpec {
	spec := &v1alpha1.CanarySpec{
		TargetRef: v1alpha1.LocalObjectReference{Name: "podinfo"},
		Service: v1alpha1.CanaryService{Name: "podinfo", Port: 80, TargetPort: intstr.FromString("http"), AppProtocol: "GRPC",
			Canary: &v1alpha1.CustomMetadata{
				Labels:      map[string]string{"team": "a", v1alpha1.LabelManagedBy: "someone", v1alpha1.LabelTrack: "mine"},
				Annotations: map[string]string{"example.com/note": "canary"},
			},
			Primary: &v1alpha1.CustomMetadata{Labels: map[string]string{"team": "b"}},
		},
	}
	v1alpha1.SetDefaults(spec)
	return spec
}

func TestBuildServices(t *testing.T) {
	target := servicesTarget()
	owner := metav1.OwnerReference{APIVersion: "serin.dev/v1alpha1", Kind: "Canary", Name: "podinfo", UID: "u1", Controller: ptr.To(true)}
	svcs := BuildServices(target, servicesSpec(), owner, false)
	if len(svcs) != 2 || svcs[0].Name != "podinfo-canary" || svcs[1].Name != "podinfo-primary" {
		t.Fatalf("services: %+v", svcs)
	}
	canary, primary := svcs[0], svcs[1]
	for _, s := range svcs {
		p := s.Spec.Ports
		if s.Namespace != "test" || len(p) != 1 || p[0].Port != 80 || p[0].TargetPort != intstr.FromString("http") || p[0].Name != "grpc" ||
			p[0].Protocol != corev1.ProtocolTCP || p[0].AppProtocol == nil || *p[0].AppProtocol != "grpc" {
			t.Errorf("%s: ports %+v", s.Name, p)
		}
		if len(s.OwnerReferences) != 1 || s.OwnerReferences[0] != owner || s.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("%s: owner %+v type %s", s.Name, s.OwnerReferences, s.Spec.Type)
		}
		if s.Labels[v1alpha1.LabelManagedBy] != v1alpha1.ManagedByValue {
			t.Errorf("%s: serin's label lost to the user's: %v", s.Name, s.Labels)
		}
	}
	if canary.Labels["team"] != "a" || canary.Labels[v1alpha1.LabelTrack] != "canary" || canary.Annotations["example.com/note"] != "canary" {
		t.Errorf("canary metadata: %v %v", canary.Labels, canary.Annotations)
	}
	if primary.Labels["team"] != "b" || primary.Labels[v1alpha1.LabelTrack] != "stable" || len(primary.Annotations) != 0 {
		t.Errorf("primary metadata: %v %v", primary.Labels, primary.Annotations)
	}

	// Each selects its own track's pods only: the canary copy's pods, and
	// the Deployment's.
	copyPods := labels.Set(BuildCopy(target, owner, "v2", 1).Spec.Template.Labels)
	stablePods := labels.Set(target.Spec.Template.Labels)
	for _, tc := range []struct {
		svc        *corev1.Service
		pods       labels.Set
		wantSelect bool
	}{{canary, copyPods, true}, {canary, stablePods, false}, {primary, stablePods, true}, {primary, copyPods, false}} {
		if got := labels.SelectorFromSet(tc.svc.Spec.Selector).Matches(tc.pods); got != tc.wantSelect {
			t.Errorf("%s (selector %v) selects pods %v: %v, want %v", tc.svc.Name, tc.svc.Spec.Selector, tc.pods, got, tc.wantSelect)
		}
	}

	noPort := servicesSpec()
	noPort.Service.Port = 0
	long := servicesSpec()
	long.Service.Name = strings.Repeat("a", 60)
	if BuildServices(target, noPort, owner, true) != nil || BuildServices(target, long, owner, true) != nil {
		t.Error("Services built without a port, or with names that are not DNS labels")
	}
}

// fakeReconciler is a Reconciler on a fake client holding the Canary.
func fakeReconciler(t *testing.T, objs ...client.Object) (*Reconciler, *v1alpha1.Canary) {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test", UID: "canary-uid"}}
	cl := fake.NewClientBuilder().WithScheme(s).WithObjects(append(objs, c)...).
		WithIndex(&corev1.Service{}, serviceOwnerIndex, serviceOwner).Build()
	return &Reconciler{Client: cl}, c
}

func getService(t *testing.T, r *Reconciler, name string) *corev1.Service {
	t.Helper()
	var s corev1.Service
	err := r.Client.Get(context.Background(), types.NamespacedName{Namespace: "test", Name: name}, &s)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestEnsureAndDeleteServices(t *testing.T) {
	ctx := context.Background()
	// Someone else's Service under one of the names, and the user's own.
	foreign := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "podinfo-primary", Namespace: "test", Labels: map[string]string{"owner": "them"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "other"}}}
	user := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "podinfo"}}}
	r, c := fakeReconciler(t, foreign, user)
	target, spec := servicesTarget(), servicesSpec()
	if err := r.ensureServices(ctx, c, spec, target); err != nil {
		t.Fatal(err)
	}
	canary := getService(t, r, "podinfo-canary")
	if canary == nil || canary.Spec.Selector["app"] != "podinfo-canary" || !metav1.IsControlledBy(canary, c) {
		t.Fatalf("canary service: %+v", canary)
	}
	if got := getService(t, r, "podinfo-primary"); got.Labels["owner"] != "them" || got.Spec.Selector["app"] != "other" || len(got.OwnerReferences) != 0 {
		t.Fatalf("someone else's Service was touched: %+v", got)
	}

	// Drift is put right.
	canary.Spec.Selector = map[string]string{"app": "podinfo"}
	canary.Labels["team"] = "z"
	if err := r.Client.Update(ctx, canary); err != nil {
		t.Fatal(err)
	}
	if err := r.ensureServices(ctx, c, spec, target); err != nil {
		t.Fatal(err)
	}
	if got := getService(t, r, "podinfo-canary"); got.Spec.Selector["app"] != "podinfo-canary" || got.Labels["team"] != "a" {
		t.Fatalf("drift not put right: %v %v", got.Spec.Selector, got.Labels)
	}

	// A new service name: the Services under the old one go.
	spec.Service.Name = "web"
	if err := r.ensureServices(ctx, c, spec, target); err != nil {
		t.Fatal(err)
	}
	if getService(t, r, "podinfo-canary") != nil || getService(t, r, "web-canary") == nil || getService(t, r, "web-primary") == nil {
		t.Fatal("services not renamed")
	}

	// Termination deletes serin's Services only.
	if err := r.do(ctx, c, spec, target, DeleteServices{}); err != nil {
		t.Fatal(err)
	}
	if getService(t, r, "web-canary") != nil || getService(t, r, "web-primary") != nil {
		t.Fatal("serin's Services left after DeleteServices")
	}
	if getService(t, r, "podinfo-primary") == nil || getService(t, r, "podinfo") == nil {
		t.Fatal("DeleteServices deleted Services serin does not own")
	}
}
