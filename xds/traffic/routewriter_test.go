package traffic

import (
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/scheme"
	"github.com/serin-dev/serin/xds/model"
)

// TestRouteWriterApplied: a written HTTPRoute counts as applied only when
// every parent it names accepted it, with resolved references, at its
// current generation and with the status traffic; a parent's refusal is a
// rejection that names the controller and its reason.
func TestRouteWriterApplied(t *testing.T) {
	ctx := context.Background()
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	cl := fake.NewClientBuilder().WithScheme(s).WithStatusSubresource(&gwv1.HTTPRoute{}).Build()
	w := &RouteWriter{Client: cl, Default: v1alpha1.ProviderGatewayAPI}
	c := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test", UID: "u1"},
		Status: v1alpha1.CanaryStatus{CanaryWeight: 10, StableRevision: "a", CanaryRevision: "b"}}
	if got := w.RouterOf(c); got != v1alpha1.RouterGatewayAPI {
		t.Fatalf("router %q", got)
	}
	rel := &model.Release{Namespace: "test", Service: "podinfo", Port: 9898, Protocol: model.HTTP, CanaryWeight: 10}
	obj, err := w.Write(ctx, c, rel, v1alpha1.RouterGatewayAPI, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, n, rej := w.Applied(ctx, c, obj); ok || n != 0 || rej != "" {
		t.Fatalf("no status yet: applied=%t parents=%d rejected=%q", ok, n, rej)
	}
	var cur gwv1.HTTPRoute
	if err := cl.Get(ctx, client.ObjectKeyFromObject(obj), &cur); err != nil {
		t.Fatal(err)
	}
	if len(cur.OwnerReferences) != 1 || cur.OwnerReferences[0].Kind != "Canary" {
		t.Fatalf("owner references %+v", cur.OwnerReferences)
	}
	setParent := func(gen int64, accepted, resolved metav1.ConditionStatus) {
		t.Helper()
		if err := cl.Get(ctx, client.ObjectKeyFromObject(obj), &cur); err != nil {
			t.Fatal(err)
		}
		cur.Status.Parents = []gwv1.RouteParentStatus{{
			// The controller echoes the parentRef as serin wrote it.
			ParentRef:      cur.Spec.ParentRefs[0],
			ControllerName: "istio.io/gateway-controller",
			Conditions: []metav1.Condition{
				{Type: "Accepted", Status: accepted, Reason: "NoMatchingParent", Message: "no such port", ObservedGeneration: gen, LastTransitionTime: metav1.Now()},
				{Type: "ResolvedRefs", Status: resolved, Reason: "ResolvedRefs", ObservedGeneration: gen, LastTransitionTime: metav1.Now()},
			},
		}}
		if err := cl.Status().Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
	}
	gen := cur.Generation
	setParent(gen-1, metav1.ConditionTrue, metav1.ConditionTrue)
	if ok, _, _ := w.Applied(ctx, c, obj); ok {
		t.Fatal("a status of an older generation does not count")
	}
	setParent(gen, metav1.ConditionTrue, metav1.ConditionFalse)
	if ok, _, rej := w.Applied(ctx, c, obj); ok || rej != "" {
		t.Fatal("unresolved references: not applied yet, not rejected")
	}
	setParent(gen, metav1.ConditionTrue, metav1.ConditionTrue)
	if ok, n, rej := w.Applied(ctx, c, obj); !ok || n != 1 || rej != "" {
		t.Fatalf("accepted: applied=%t parents=%d rejected=%q", ok, n, rej)
	}
	next := c.DeepCopy()
	next.Status.CanaryWeight = 20
	if ok, _, _ := w.Applied(ctx, next, obj); ok {
		t.Fatal("the route carries weight 10, not the 20 now in status")
	}
	setParent(gen, metav1.ConditionFalse, metav1.ConditionTrue)
	if _, _, rej := w.Applied(ctx, c, obj); !strings.Contains(rej, "istio.io/gateway-controller") || !strings.Contains(rej, "NoMatchingParent") {
		t.Fatalf("rejection %q", rej)
	}
	if again, err := w.Write(ctx, c, rel, v1alpha1.RouterGatewayAPI, obj); err != nil || again != obj {
		t.Fatalf("an unchanged route is not written again: %v", err)
	}
	if err := w.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
}

// TestRouteWriterNotOurs: a route of the release's name that serin did
// not make is never written over.
func TestRouteWriterNotOurs(t *testing.T) {
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	theirs := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
		Spec: gwv1.HTTPRouteSpec{Hostnames: []gwv1.Hostname{"app.example.com"}}}
	cl := fake.NewClientBuilder().WithScheme(s).WithObjects(theirs).Build()
	w := &RouteWriter{Client: cl}
	c := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"}, Spec: v1alpha1.CanarySpec{Provider: "gatewayapi:v1"}}
	rel := &model.Release{Namespace: "test", Service: "podinfo", Port: 9898, Protocol: model.HTTP}
	_, err = w.Write(context.Background(), c, rel, w.RouterOf(c), nil)
	var notOurs errNotOurs
	if !errors.As(err, &notOurs) {
		t.Fatalf("got %v, want errNotOurs", err)
	}
	var cur gwv1.HTTPRoute
	if err := cl.Get(context.Background(), client.ObjectKeyFromObject(theirs), &cur); err != nil || len(cur.Spec.Rules) != 0 || cur.Annotations[AnnotationTraffic] != "" {
		t.Fatalf("the user's route changed: %+v %v", cur, err)
	}
	if (*RouteWriter)(nil).RouterOf(c) != v1alpha1.RouterXDS {
		t.Fatal("without a route writer everything is served over xDS")
	}
}

// TestRouteWriterTrafficSplit: an SMI TrafficSplit has no status; it
// counts as applied once written with the status traffic.
func TestRouteWriterTrafficSplit(t *testing.T) {
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	w := &RouteWriter{Client: fake.NewClientBuilder().WithScheme(s).Build(), Default: "linkerd"}
	c := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "examiner", Namespace: "apps"}, Status: v1alpha1.CanaryStatus{CanaryWeight: 5}}
	rel := &model.Release{Namespace: "apps", Service: "examiner", Port: 80, Protocol: model.HTTP, CanaryWeight: 5}
	obj, err := w.Write(context.Background(), c, rel, w.RouterOf(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := w.Applied(context.Background(), c, obj); !ok {
		t.Fatal("a written TrafficSplit is applied")
	}
	c.Status.CanaryWeight = 10
	if ok, _, _ := w.Applied(context.Background(), c, obj); ok {
		t.Fatal("a TrafficSplit written for weight 5 does not apply weight 10")
	}
}

// TestTrafficSplitKindMissing: without the TrafficSplit kind installed, a
// provider linkerd release is rejected with a message naming the missing
// kind and is written again later; once the kind is installed, the next
// write carries the release and the rejection is gone.
func TestTrafficSplitKindMissing(t *testing.T) {
	ctx := context.Background()
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	installed := false
	noKind := func(obj client.Object) error {
		if u, ok := obj.(*unstructured.Unstructured); ok && !installed && u.GroupVersionKind().Group == "split.smi-spec.io" {
			return &meta.NoKindMatchError{GroupKind: u.GroupVersionKind().GroupKind(), SearchedVersions: []string{u.GroupVersionKind().Version}}
		}
		return nil
	}
	cl := interceptor.NewClient(fake.NewClientBuilder().WithScheme(s).Build(), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if err := noKind(obj); err != nil {
				return err
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	x := &Controller{Routes: &RouteWriter{Client: cl, Default: v1alpha1.ProviderLinkerd}, published: map[types.NamespacedName]*published{}}
	c := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "examiner", Namespace: "apps"}, Status: v1alpha1.CanaryStatus{CanaryWeight: 20}}
	rel := &model.Release{Namespace: "apps", Service: "examiner", Port: 80, Protocol: model.HTTP, CanaryWeight: 20}
	key := client.ObjectKeyFromObject(c)
	p := &published{traffic: trafficOf(c)}
	x.published[key] = p

	if err := x.writeRoute(ctx, c, rel, x.Routes.RouterOf(c), nil, p); err != nil {
		t.Fatalf("a missing kind is a rejection, not an error to retry at once: %v", err)
	}
	ok, _, rejected := x.routeApplied(ctx, c)
	if ok || !strings.Contains(rejected, `kind "TrafficSplit"`) || !strings.Contains(rejected, "split.smi-spec.io") {
		t.Fatalf("applied=%t rejected=%q; want a rejection naming the missing kind", ok, rejected)
	}
	if got := x.retryMissingKind(key); got.RequeueAfter == 0 {
		t.Fatal("a release whose route kind is missing is not written again")
	}

	installed = true
	prev := *p
	if err := x.writeRoute(ctx, c, rel, x.Routes.RouterOf(c), &prev, p); err != nil {
		t.Fatal(err)
	}
	if ok, _, rejected := x.routeApplied(ctx, c); !ok || rejected != "" {
		t.Fatalf("with the kind installed: applied=%t rejected=%q", ok, rejected)
	}
	if got := x.retryMissingKind(key); got.RequeueAfter != 0 {
		t.Fatalf("written: requeue %v", got)
	}
}
