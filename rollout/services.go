package rollout

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The Services serin owns: <svc>-canary selects the canary pods only and
// <svc>-primary the stable pods only, so hooks, load tests and acceptance
// tests address each track by name, as Flagger users do. The apex Service
// <svc> is the user's and serin never touches it; when there is none (a
// Flagger tutorial's Deployment + HPA + Canary), serin makes it, as Flagger
// does, and owns it like the other two.

// BuildServices are the Services serin owns for a release of target,
// owned by the Canary: <svc>-canary selects the canary copy's pods (the
// Deployment's selector labels with their values suffixed, as the copy
// labels them), <svc>-primary the stable pods (the Deployment's selector,
// which canary pods never match), and, when apex is set, <svc> selects the
// stable pods as the user's own Service would. All serve the effective
// service port, and with service.portDiscovery every other port of the pod
// template's containers. It returns nil when the spec has no port, or when
// the Services' names would not be valid (a service name too long for the
// suffixes).
func BuildServices(target *appsv1.Deployment, spec *v1alpha1.CanarySpec, owner metav1.OwnerReference, apex bool) []*corev1.Service {
	svc := spec.Service
	if svc.Port == 0 || len(validation.IsDNS1035Label(v1alpha1.PrimaryServiceName(svc.Name))) > 0 {
		return nil
	}
	sel := map[string]string{}
	if target.Spec.Selector != nil {
		sel = target.Spec.Selector.MatchLabels
	}
	ports := servicePorts(&svc, &target.Spec.Template)
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
				Ports:    slices.Clone(ports),
			},
		}
		if svc.TrafficDistribution != "" {
			td := string(svc.TrafficDistribution)
			s.Spec.TrafficDistribution = &td
		}
		if meta != nil {
			maps.Copy(s.Labels, meta.Labels)
			s.Annotations = maps.Clone(meta.Annotations)
		}
		// serin's own labels win over the user's: they tell serin's
		// objects from everyone else's.
		s.Labels[v1alpha1.LabelManagedBy] = v1alpha1.ManagedByValue
		if track != "" {
			s.Labels[v1alpha1.LabelTrack] = string(track)
			if svc.Headless {
				s.Spec.ClusterIP = corev1.ClusterIPNone
			}
		}
		return s
	}
	var out []*corev1.Service
	if apex {
		// No track: it is the address clients and serin's routes use, so
		// it keeps a cluster IP even with service.headless.
		out = append(out, build(svc.Name, "", sel, svc.Apex))
	}
	return append(out,
		build(v1alpha1.CanaryServiceName(svc.Name), v1alpha1.TrackCanary, v1alpha1.CanarySelector(sel), svc.Canary),
		build(v1alpha1.PrimaryServiceName(svc.Name), v1alpha1.TrackStable, sel, svc.Primary))
}

// servicePorts are the ports of the Services serin owns: the service port,
// then, with portDiscovery, every other TCP, UDP or SCTP port the pod
// template's containers declare, in their order, each once, named after
// the container's port or after its protocol and number.
func servicePorts(svc *v1alpha1.CanaryService, tmpl *corev1.PodTemplateSpec) []corev1.ServicePort {
	main := corev1.ServicePort{Name: svc.PortName, Protocol: corev1.ProtocolTCP, Port: svc.Port, TargetPort: svc.TargetPort}
	if svc.AppProtocol != "" {
		proto := string(svc.AppProtocol)
		main.AppProtocol = &proto
	}
	ports := []corev1.ServicePort{main}
	if !svc.PortDiscovery {
		return ports
	}
	type key struct {
		port  int32
		proto corev1.Protocol
	}
	seen := map[key]bool{{svc.Port, corev1.ProtocolTCP}: true}
	names := map[string]bool{svc.PortName: true}
	for _, c := range tmpl.Spec.Containers {
		for _, cp := range c.Ports {
			proto := cp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			k := key{cp.ContainerPort, proto}
			if seen[k] || servesMain(svc, cp) {
				continue
			}
			name := cp.Name
			if name == "" || names[name] {
				name = fmt.Sprintf("%s-%d", strings.ToLower(string(proto)), cp.ContainerPort)
			}
			if names[name] {
				continue
			}
			seen[k], names[name] = true, true
			ports = append(ports, corev1.ServicePort{Name: name, Protocol: proto, Port: cp.ContainerPort,
				TargetPort: intstr.FromInt32(cp.ContainerPort)})
		}
	}
	return ports
}

// servesMain tells whether a container port is the one the service port
// already targets.
func servesMain(svc *v1alpha1.CanaryService, cp corev1.ContainerPort) bool {
	t := svc.TargetPort
	switch {
	case t.Type == intstr.String && t.StrVal != "":
		return cp.Name == t.StrVal
	case t.Type == intstr.Int && t.IntVal != 0:
		return cp.ContainerPort == t.IntVal
	}
	return cp.ContainerPort == svc.Port
}

// ensureServices creates the Services serin owns for the release, brings
// back in line those that drifted from the spec, and deletes those it owns
// under other names (the service name changed). A Service of the same name
// that serin does not own is left alone: the user's apex Service silently,
// any other with a warning event.
func (r *Reconciler) ensureServices(ctx context.Context, c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, target *appsv1.Deployment) error {
	if target == nil {
		return nil
	}
	apex, err := r.makesApex(ctx, c, spec.Service.Name)
	if err != nil {
		return err
	}
	want := BuildServices(target, spec, *metav1.NewControllerRef(c, v1alpha1.GroupVersion.WithKind("Canary")), apex)
	// The apex name is never cleaned up here: when serin did not make it
	// this time, it is the user's (or was just handed over to them).
	keep := map[string]bool{spec.Service.Name: true}
	for _, s := range want {
		keep[s.Name] = true
		if err := r.ensureService(ctx, c, s, spec.Service.UnmanagedMetadata, s.Name == spec.Service.Name); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
	}
	return r.deleteServices(ctx, c, keep)
}

// makesApex tells whether serin makes the apex Service name: when there is
// none, or when the one there is serin's for this Canary.
func (r *Reconciler) makesApex(ctx context.Context, c *v1alpha1.Canary, name string) (bool, error) {
	var got corev1.Service
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, &got)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("service %s: %w", name, err)
	}
	if !metav1.IsControlledBy(&got, c) {
		return false, nil
	}
	if !appliedByOthers(&got) {
		return true, nil
	}
	// Someone applied their own Service over the one serin made: it is
	// theirs from now on, and goes neither with the Canary nor with serin.
	got.OwnerReferences = slices.DeleteFunc(got.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == c.UID })
	if got.Labels[v1alpha1.LabelManagedBy] == v1alpha1.ManagedByValue {
		delete(got.Labels, v1alpha1.LabelManagedBy)
	}
	if err := r.Client.Update(ctx, &got, fieldOwner); err != nil {
		return false, fmt.Errorf("hand service %s over: %w", name, err)
	}
	r.event(ctx, c, nil, Event{Reason: "ServiceHandedOver", Action: "HandOver",
		Message: fmt.Sprintf("Service %s.%s was applied by someone else; it is theirs now and serin leaves it alone", name, c.Namespace)})
	return false, nil
}

// appliedByOthers tells whether a manager other than serin set fields of
// a Service's spec.
func appliedByOthers(svc *corev1.Service) bool {
	for _, mf := range svc.ManagedFields {
		if mf.Manager != string(fieldOwner) && mf.FieldsV1 != nil && strings.Contains(mf.FieldsV1.GetRawString(), `"f:spec"`) {
			return true
		}
	}
	return false
}

// ensureService creates want, or updates the Service serin owns under its
// name to match it, keeping the labels and annotations listed in
// unmanaged as others set them. A Service that turns headless or back is
// made again: its cluster IP cannot change.
func (r *Reconciler) ensureService(ctx context.Context, c *v1alpha1.Canary, want *corev1.Service, unmanaged *v1alpha1.UnmanagedMetadata, apex bool) error {
	var got corev1.Service
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), &got)
	switch {
	case apierrors.IsNotFound(err):
		return client.IgnoreAlreadyExists(r.Client.Create(ctx, want, fieldOwner))
	case err != nil:
		return err
	case !metav1.IsControlledBy(&got, c) && apex:
		// The user's own Service <svc>, made after serin looked.
		return nil
	case !metav1.IsControlledBy(&got, c):
		// An event on the Canary only (no spec: no alert), which the
		// recorder folds into a series as it repeats.
		r.event(ctx, c, nil, Event{Warning: true, Reason: "ServiceConflict", Action: "Skip",
			Message: fmt.Sprintf("Service %s.%s exists and is not serin's; leaving it alone", got.Name, got.Namespace)})
		return nil
	case (got.Spec.ClusterIP == corev1.ClusterIPNone) != (want.Spec.ClusterIP == corev1.ClusterIPNone):
		if err := r.Client.Delete(ctx, &got, client.Preconditions{UID: &got.UID}); client.IgnoreNotFound(err) != nil {
			return err
		}
		return client.IgnoreAlreadyExists(r.Client.Create(ctx, want, fieldOwner))
	}
	keepUnmanaged(want, &got, unmanaged)
	if equality.Semantic.DeepEqual(got.Labels, want.Labels) && equality.Semantic.DeepEqual(got.Annotations, want.Annotations) &&
		equality.Semantic.DeepEqual(got.Spec.Selector, want.Spec.Selector) && samePorts(got.Spec.Ports, want.Spec.Ports) &&
		equality.Semantic.DeepEqual(got.Spec.TrafficDistribution, want.Spec.TrafficDistribution) {
		return nil
	}
	got.Labels, got.Annotations = want.Labels, want.Annotations
	got.Spec.Selector, got.Spec.Ports = want.Spec.Selector, want.Spec.Ports
	got.Spec.TrafficDistribution = want.Spec.TrafficDistribution
	return r.Client.Update(ctx, &got, fieldOwner)
}

// keepUnmanaged copies into want the labels and annotations of got whose
// keys service.unmanagedMetadata lists: others manage them. serin's own
// labels are never among them.
func keepUnmanaged(want, got *corev1.Service, unmanaged *v1alpha1.UnmanagedMetadata) {
	if unmanaged == nil {
		return
	}
	for _, k := range unmanaged.Labels {
		if v, ok := got.Labels[k]; ok && k != v1alpha1.LabelManagedBy && k != v1alpha1.LabelTrack {
			want.Labels[k] = v
		}
	}
	for _, k := range unmanaged.Annotations {
		if v, ok := got.Annotations[k]; ok {
			if want.Annotations == nil {
				want.Annotations = map[string]string{}
			}
			want.Annotations[k] = v
		}
	}
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
	if err := r.Client.List(ctx, &list, client.InNamespace(c.Namespace), client.MatchingFields{serviceOwnerIndex: c.Name}); err != nil {
		return err
	}
	for i := range list.Items {
		s := &list.Items[i]
		if keep[s.Name] || !metav1.IsControlledBy(s, c) {
			continue
		}
		// As read: a Service changed since (handed over to its user) is
		// looked at again on the next reconcile.
		if err := r.Client.Delete(ctx, s, client.Preconditions{UID: &s.UID, ResourceVersion: &s.ResourceVersion}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete service %s: %w", s.Name, err)
		}
	}
	return nil
}

// serviceOwnerIndex files a Service under the Canary that controls it, so
// that a reconcile reads only its own Services, not every Service serin
// made in the namespace.
const serviceOwnerIndex = "serin.rollout/canary"

func serviceOwner(o client.Object) []string {
	if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "Canary" && strings.HasPrefix(ref.APIVersion, v1alpha1.GroupVersion.Group+"/") {
		return []string{ref.Name}
	}
	return nil
}
