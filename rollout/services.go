package rollout

import (
	"context"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The Services serin owns beside the user's Service <svc>, which it never
// touches: <svc>-canary selects the canary pods only and <svc>-primary the
// stable pods only, so hooks, load tests and acceptance tests address each
// track by name, as Flagger users do.

// BuildServices are the Services serin owns for a release of target,
// owned by the Canary: <svc>-canary selects the canary copy's pods (the
// Deployment's selector labels with their values suffixed, as the copy
// labels them), <svc>-primary the stable pods (the Deployment's selector,
// which canary pods never match). Both serve the effective service port.
// It returns nil when the spec has no port, or when the Services' names
// would not be valid (a service name too long for the suffixes).
func BuildServices(target *appsv1.Deployment, spec *v1alpha1.CanarySpec, owner metav1.OwnerReference) []*corev1.Service {
	svc := spec.Service
	if svc.Port == 0 || len(validation.IsDNS1035Label(v1alpha1.PrimaryServiceName(svc.Name))) > 0 {
		return nil
	}
	sel := map[string]string{}
	if target.Spec.Selector != nil {
		sel = target.Spec.Selector.MatchLabels
	}
	port := corev1.ServicePort{Name: svc.PortName, Protocol: corev1.ProtocolTCP, Port: svc.Port, TargetPort: svc.TargetPort}
	if svc.AppProtocol != "" {
		proto := string(svc.AppProtocol)
		port.AppProtocol = &proto
	}
	build := func(name string, track v1alpha1.Track, selector map[string]string, meta *v1alpha1.CustomMetadata) *corev1.Service {
		s := &corev1.Service{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: target.Namespace,
				Labels:          map[string]string{},
				OwnerReferences: []metav1.OwnerReference{owner},
			},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeClusterIP,
				Selector: maps.Clone(selector),
				Ports:    []corev1.ServicePort{*port.DeepCopy()},
			},
		}
		if meta != nil {
			maps.Copy(s.Labels, meta.Labels)
			s.Annotations = maps.Clone(meta.Annotations)
		}
		// serin's own labels win over the user's: they tell serin's
		// objects from everyone else's.
		s.Labels[v1alpha1.LabelManagedBy] = v1alpha1.ManagedByValue
		s.Labels[v1alpha1.LabelTrack] = string(track)
		return s
	}
	return []*corev1.Service{
		build(v1alpha1.CanaryServiceName(svc.Name), v1alpha1.TrackCanary, v1alpha1.CanarySelector(sel), svc.Canary),
		build(v1alpha1.PrimaryServiceName(svc.Name), v1alpha1.TrackStable, sel, svc.Primary),
	}
}

// ensureServices creates the Services serin owns for the release, brings
// back in line those that drifted from the spec, and deletes those it owns
// under other names (the service name changed). A Service of the same name
// that serin does not own is left alone, with a warning event.
func (r *Reconciler) ensureServices(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, target *appsv1.Deployment) error {
	if target == nil {
		return nil
	}
	want := BuildServices(target, spec, *metav1.NewControllerRef(c, v1alpha1.GroupVersion.WithKind("Canary")))
	keep := map[string]bool{}
	for _, s := range want {
		keep[s.Name] = true
		if err := r.ensureService(ctx, c, s); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
	}
	return r.deleteServices(ctx, c, keep)
}

// ensureService creates want, or updates the Service serin owns under its
// name to match it.
func (r *Reconciler) ensureService(ctx context.Context, c *v1alpha1.Canary, want *corev1.Service) error {
	var got corev1.Service
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), &got)
	switch {
	case apierrors.IsNotFound(err):
		return client.IgnoreAlreadyExists(r.Client.Create(ctx, want, fieldOwner))
	case err != nil:
		return err
	case !metav1.IsControlledBy(&got, c):
		// An event on the Canary only (no spec: no alert), which the
		// recorder folds into a series as it repeats.
		r.event(ctx, c, nil, Event{Warning: true, Reason: "ServiceConflict", Action: "Skip",
			Message: fmt.Sprintf("Service %s.%s exists and is not serin's; leaving it alone", got.Name, got.Namespace)})
		return nil
	case equality.Semantic.DeepEqual(got.Labels, want.Labels) && equality.Semantic.DeepEqual(got.Annotations, want.Annotations) &&
		equality.Semantic.DeepEqual(got.Spec.Selector, want.Spec.Selector) && samePorts(got.Spec.Ports, want.Spec.Ports):
		return nil
	}
	got.Labels, got.Annotations = want.Labels, want.Annotations
	got.Spec.Selector, got.Spec.Ports = want.Spec.Selector, want.Spec.Ports
	return r.Client.Update(ctx, &got, fieldOwner)
}

// samePorts compares the fields of the ports serin sets.
func samePorts(got, want []corev1.ServicePort) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Protocol != w.Protocol || g.Port != w.Port || g.TargetPort != w.TargetPort ||
			!equality.Semantic.DeepEqual(g.AppProtocol, w.AppProtocol) {
			return false
		}
	}
	return true
}

// deleteServices deletes the Services the Canary owns, except those named
// in keep. Services the Canary's deletion leaves behind (one created just
// before it, not yet in the cache) go with it through their owner
// reference.
func (r *Reconciler) deleteServices(ctx context.Context, c *v1alpha1.Canary, keep map[string]bool) error {
	var list corev1.ServiceList
	if err := r.Client.List(ctx, &list, client.InNamespace(c.Namespace), client.MatchingLabels{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}); err != nil {
		return err
	}
	for i := range list.Items {
		s := &list.Items[i]
		if keep[s.Name] || !metav1.IsControlledBy(s, c) {
			continue
		}
		if err := r.Client.Delete(ctx, s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete service %s: %w", s.Name, err)
		}
	}
	return nil
}
