package traffic

import (
	"context"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/xds/model"
	"github.com/serin-dev/serin/xds/routes"
)

// AnnotationTraffic on a route object serin writes is the status traffic
// (weight, mirroring, matching, revisions) it carries.
const AnnotationTraffic = "serin.dev/traffic"

// RouteWriter carries the releases whose router is not serin's own xDS
// server (spec.provider gatewayapi:v1, linkerd): it applies each one's
// route object, owned by its Canary, and reads back whether the route's
// controllers accepted it.
type RouteWriter struct {
	Client client.Client
	// Default is the install default of spec.provider (--mesh-provider).
	Default v1alpha1.Provider
	// Istiod, when set, also waits for istiod's proxies to apply an
	// accepted Gateway API route (--istiod-debug-url).
	Istiod *IstiodSync
}

// RouterOf is the router of c. A nil writer routes everything through
// serin's xDS server.
func (w *RouteWriter) RouterOf(c *v1alpha1.Canary) v1alpha1.Router {
	if w == nil {
		return v1alpha1.RouterXDS
	}
	return v1alpha1.RouterFor(c.Spec.Provider, w.Default)
}

// errNotOurs is a route object of the release's name that serin did not
// make: serin never writes over it.
type errNotOurs struct{ kind, key string }

func (e errNotOurs) Error() string {
	return fmt.Sprintf("%s %s exists and is not serin's: serin does not write over it", e.kind, e.key)
}

// Write applies the route object of rel for router, owned by c and
// annotated with c's status traffic, unless an object of that kind and
// name exists that serin did not make. It returns the object written;
// when that equals prev (what was last written), nothing is applied.
func (w *RouteWriter) Write(ctx context.Context, c *v1alpha1.Canary, rel *model.Release, router v1alpha1.Router, prev client.Object) (client.Object, error) {
	obj, err := routes.Render(rel, router)
	if err != nil {
		return nil, errInvalidRoute{err}
	}
	ann := obj.GetAnnotations()
	ann[AnnotationTraffic] = trafficOf(c).String()
	obj.SetAnnotations(ann)
	obj.SetOwnerReferences([]metav1.OwnerReference{*metav1.NewControllerRef(c, v1alpha1.GroupVersion.WithKind("Canary"))})
	if prev != nil && equality.Semantic.DeepEqual(prev, obj) {
		return prev, nil
	}
	cur := emptyLike(obj)
	err = w.Client.Get(ctx, client.ObjectKeyFromObject(obj), cur)
	switch {
	case err == nil && cur.GetLabels()[routes.LabelManagedBy] != routes.ManagedBy:
		return nil, errNotOurs{kind: kindOf(obj), key: client.ObjectKeyFromObject(obj).String()}
	case err != nil && !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("get %s %s: %w", kindOf(obj), client.ObjectKeyFromObject(obj), err)
	}
	if err := serverSideApply(ctx, w.Client, obj); err != nil {
		return nil, fmt.Errorf("apply %s %s: %w", kindOf(obj), client.ObjectKeyFromObject(obj), err)
	}
	return obj, nil
}

// errInvalidRoute is a release the router cannot express.
type errInvalidRoute struct{ err error }

func (e errInvalidRoute) Error() string { return e.err.Error() }
func (e errInvalidRoute) Unwrap() error { return e.err }

// Delete removes a route object serin wrote (its owner reference would
// too, once the Canary is gone).
func (w *RouteWriter) Delete(ctx context.Context, written client.Object) error {
	err := w.Client.Delete(ctx, emptyLike(written))
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		return nil
	}
	return err
}

// Applied reports whether the route object written for c carries the
// traffic now in c's status and was accepted. A Gateway API route is when
// every parent it names reports Accepted and ResolvedRefs at the route's
// current generation; accepted is how many did, and rejected says why one
// refused it. An SMI TrafficSplit has no status: it counts once written.
func (w *RouteWriter) Applied(ctx context.Context, c *v1alpha1.Canary, written client.Object) (applied bool, accepted int, rejected string) {
	if _, ok := written.(*unstructured.Unstructured); ok {
		return written.GetAnnotations()[AnnotationTraffic] == trafficOf(c).String(), 1, ""
	}
	cur := emptyLike(written)
	if err := w.Client.Get(ctx, client.ObjectKeyFromObject(written), cur); err != nil {
		return false, 0, ""
	}
	if cur.GetAnnotations()[AnnotationTraffic] != trafficOf(c).String() {
		return false, 0, ""
	}
	spec, status := routeParents(cur)
	gen := cur.GetGeneration()
	for _, ref := range spec {
		ok := false
		for _, ps := range status {
			if !sameParent(ps.ParentRef, ref, cur.GetNamespace()) {
				continue
			}
			acc := meta.FindStatusCondition(ps.Conditions, string(gwv1.RouteConditionAccepted))
			res := meta.FindStatusCondition(ps.Conditions, string(gwv1.RouteConditionResolvedRefs))
			if acc != nil && acc.ObservedGeneration == gen && acc.Status == metav1.ConditionFalse {
				return false, accepted, fmt.Sprintf("%s %s not accepted by %s for parent %s: %s: %s",
					kindOf(cur), client.ObjectKeyFromObject(cur), ps.ControllerName, ref.Name, acc.Reason, acc.Message)
			}
			if current(acc, gen) && current(res, gen) {
				ok = true
			}
		}
		if ok {
			accepted++
		}
	}
	return accepted == len(spec) && accepted > 0, accepted, ""
}

func current(c *metav1.Condition, gen int64) bool {
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == gen
}

// routeParents are a Gateway API route's parentRefs and parent statuses.
func routeParents(o client.Object) ([]gwv1.ParentReference, []gwv1.RouteParentStatus) {
	switch r := o.(type) {
	case *gwv1.HTTPRoute:
		return r.Spec.ParentRefs, r.Status.Parents
	case *gwv1.GRPCRoute:
		return r.Spec.ParentRefs, r.Status.Parents
	case *gwv1.TCPRoute:
		return r.Spec.ParentRefs, r.Status.Parents
	}
	return nil, nil
}

// sameParent compares parent references with Gateway API's defaults: the
// route's namespace, group gateway.networking.k8s.io, kind Gateway.
func sameParent(a, b gwv1.ParentReference, ns string) bool {
	norm := func(p gwv1.ParentReference) string {
		group, kind, pns, section, port := gwv1.GroupName, "Gateway", ns, "", int32(0)
		if p.Group != nil {
			group = string(*p.Group)
		}
		if p.Kind != nil {
			kind = string(*p.Kind)
		}
		if p.Namespace != nil {
			pns = string(*p.Namespace)
		}
		if p.SectionName != nil {
			section = string(*p.SectionName)
		}
		if p.Port != nil {
			port = int32(*p.Port)
		}
		return fmt.Sprintf("%s/%s/%s/%s/%s/%d", group, kind, pns, p.Name, section, port)
	}
	return norm(a) == norm(b)
}

// emptyLike is an object of obj's kind and key, to read or delete it.
func emptyLike(obj client.Object) client.Object {
	var out client.Object
	if u, ok := obj.(*unstructured.Unstructured); ok {
		e := &unstructured.Unstructured{}
		e.SetGroupVersionKind(u.GroupVersionKind())
		out = e
	} else {
		out = reflect.New(reflect.TypeOf(obj).Elem()).Interface().(client.Object)
	}
	out.SetName(obj.GetName())
	out.SetNamespace(obj.GetNamespace())
	return out
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *gwv1.HTTPRoute:
		return "HTTPRoute"
	case *gwv1.GRPCRoute:
		return "GRPCRoute"
	case *gwv1.TCPRoute:
		return "TCPRoute"
	}
	return obj.GetObjectKind().GroupVersionKind().Kind
}
