package compat

import (
	"context"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/serin-dev/serin/api/flaggerv1beta1"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/scheme"
)

var key = types.NamespacedName{Namespace: "test", Name: "podinfo"}

func newMirror(t *testing.T, objs ...client.Object) (*Mirror, client.Client) {
	t.Helper()
	return newMirrorWith(t, interceptor.Funcs{}, objs...)
}

func newMirrorWith(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) (*Mirror, client.Client) {
	t.Helper()
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	cl := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithInterceptorFuncs(funcs).
		WithStatusSubresource(&flaggerv1beta1.Canary{}, &v1alpha1.Canary{}).Build()
	return &Mirror{Client: cl, Log: logr.Discard()}, cl
}

func flaggerCanary() *flaggerv1beta1.Canary {
	return &flaggerv1beta1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, UID: "uid-1"},
		Spec: flaggerv1beta1.CanarySpec{Provider: "istio", TargetRef: v1alpha1.LocalObjectReference{Name: "podinfo"},
			Service: v1alpha1.CanaryService{Port: 9898, PortDiscovery: true}},
	}
}

func reconcile(t *testing.T, m *Mirror) {
	t.Helper()
	if _, err := m.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
}

func TestMirror(t *testing.T) {
	ctx := context.Background()
	m, cl := newMirror(t, flaggerCanary())
	reconcile(t, m)

	var sc v1alpha1.Canary
	if err := cl.Get(ctx, key, &sc); err != nil {
		t.Fatalf("no serin canary: %v", err)
	}
	if ref := metav1.GetControllerOf(&sc); ref == nil || ref.Kind != "Canary" || ref.APIVersion != "flagger.app/v1beta1" {
		t.Fatalf("owner %+v", ref)
	}
	if !sc.Spec.Service.PortDiscovery || sc.Spec.Service.Port != 9898 {
		t.Fatalf("spec not converted: %+v", sc.Spec.Service)
	}

	// The engine writes status; the mirror shows it in Flagger's shape.
	sc.Status = v1alpha1.CanaryStatus{Phase: v1alpha1.PhaseProgressing, CanaryWeight: 10, CanaryRevision: "b", StableRevision: "a",
		Conditions: []metav1.Condition{{Type: v1alpha1.ConditionPromoted, Status: metav1.ConditionFalse, Reason: "Progressing", LastTransitionTime: metav1.Now()}}}
	if err := cl.Status().Update(ctx, &sc); err != nil {
		t.Fatal(err)
	}
	reconcile(t, m)
	var fc flaggerv1beta1.Canary
	if err := cl.Get(ctx, key, &fc); err != nil {
		t.Fatal(err)
	}
	if fc.Status.Phase != v1alpha1.PhaseProgressing || fc.Status.CanaryWeight != 10 || fc.Status.LastAppliedSpec != "b" ||
		len(fc.Status.Conditions) != 1 || fc.Status.Conditions[0].Type != flaggerv1beta1.ConditionPromoted {
		t.Fatalf("flagger status %+v", fc.Status)
	}

	// A spec change reaches the serin Canary.
	fc.Spec.Service.Port = 8080
	if err := cl.Update(ctx, &fc); err != nil {
		t.Fatal(err)
	}
	reconcile(t, m)
	if err := cl.Get(ctx, key, &sc); err != nil || sc.Spec.Service.Port != 8080 {
		t.Fatalf("spec not updated: %v %+v", err, sc.Spec.Service)
	}
}

// TestMirrorLeavesForeignCanary: a serin.dev Canary of the same name that
// the Flagger Canary does not own is never changed.
func TestMirrorLeavesForeignCanary(t *testing.T) {
	own := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace},
		Spec: v1alpha1.CanarySpec{TargetRef: v1alpha1.LocalObjectReference{Name: "other"}}}
	m, cl := newMirror(t, flaggerCanary(), own)
	reconcile(t, m)
	var sc v1alpha1.Canary
	if err := cl.Get(context.Background(), key, &sc); err != nil || sc.Spec.TargetRef.Name != "other" {
		t.Fatalf("foreign canary changed: %v %+v", err, sc.Spec)
	}
}

// TestMirrorShowsRefusal: when serin's validation rejects the converted
// spec, the Flagger Canary's status says so (Mirrored=False, Invalid).
func TestMirrorShowsRefusal(t *testing.T) {
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "serin.dev", Kind: "Canary"}, key.Name,
		field.ErrorList{field.NotSupported(field.NewPath("spec", "service", "trafficPolicy", "tls", "mode"), "SIMPLE", []string{"DISABLE", "ISTIO_MUTUAL"})})
	m, cl := newMirrorWith(t, interceptor.Funcs{Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
		return invalid
	}}, flaggerCanary())
	reconcile(t, m)
	var fc flaggerv1beta1.Canary
	if err := cl.Get(context.Background(), key, &fc); err != nil {
		t.Fatal(err)
	}
	if len(fc.Status.Conditions) != 1 || fc.Status.Conditions[0].Type != ConditionMirrored ||
		fc.Status.Conditions[0].Reason != "Invalid" || !strings.HasSuffix(fc.Status.Conditions[0].Message, invalid.Error()) {
		t.Fatalf("conditions %+v", fc.Status.Conditions)
	}
}
