package traffic

import (
	"context"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/xds/build"
)

// An event about a Pod, Deployment or Service wakes only the Canaries it
// concerns, not every Canary of its namespace: with a hundred releases in
// a namespace, each pod change of one of them used to rebuild all hundred.
// The lists below read the cache through its indexes (index.go), without
// copying: nothing here mutates.

// canariesOfPod are the Canaries whose stable or canary track selects the
// pod (by its target Deployment's selector, as the builder picks pods).
func (x *Controller) canariesOfPod(ctx context.Context, o client.Object) []reconcile.Request {
	targets, err := x.selecting(ctx, o.GetNamespace(), o.GetLabels())
	if err != nil {
		return x.canariesInNamespace(ctx, o)
	}
	set := labels.Set(o.GetLabels())
	var reqs []reconcile.Request
	for _, d := range targets {
		if !tracksSelect(build.TracksOf(d), set) {
			continue
		}
		canaries, err := x.canariesOf(ctx, d.Namespace, d.Name)
		if err != nil {
			return x.canariesInNamespace(ctx, o)
		}
		reqs = append(reqs, requestsFor(canaries, func(*v1alpha1.Canary) bool { return true })...)
	}
	return reqs
}

// canariesOfDeployment are the Canaries whose target, or its canary copy,
// is the Deployment.
func (x *Controller) canariesOfDeployment(ctx context.Context, o client.Object) []reconcile.Request {
	names := []string{o.GetName()}
	if target, ok := strings.CutSuffix(o.GetName(), v1alpha1.CopySuffix); ok {
		names = append(names, target)
	}
	var reqs []reconcile.Request
	for _, name := range names {
		canaries, err := x.canariesOf(ctx, o.GetNamespace(), name)
		if err != nil {
			return x.canariesInNamespace(ctx, o)
		}
		reqs = append(reqs, requestsFor(canaries, func(*v1alpha1.Canary) bool { return true })...)
	}
	return reqs
}

// canariesOfService are the Canaries that may release the Service: those
// whose service (or target) has its name, without serin's -canary and
// -primary suffixes. A target whose annotations may name another service
// keeps its Canary woken by every Service of the namespace.
func (x *Controller) canariesOfService(ctx context.Context, o client.Object) []reconcile.Request {
	canaries, targets, ok := x.namespaceState(ctx, o.GetNamespace())
	if !ok {
		return x.canariesInNamespace(ctx, o)
	}
	base := strings.TrimSuffix(strings.TrimSuffix(o.GetName(), v1alpha1.CopySuffix), v1alpha1.PrimarySuffix)
	return requestsFor(canaries, func(c *v1alpha1.Canary) bool {
		if d := targets[c.TargetName()]; d != nil {
			if _, named := d.Annotations[v1alpha1.AnnotationService]; named {
				return true
			}
		}
		name := c.Spec.Service.Name
		if name == "" {
			name = c.TargetName()
		}
		return name == base || name == o.GetName()
	})
}

// namespaceState are a namespace's Canaries and its Deployments by name,
// uncopied from the cache.
func (x *Controller) namespaceState(ctx context.Context, ns string) ([]v1alpha1.Canary, map[string]*appsv1.Deployment, bool) {
	var canaries v1alpha1.CanaryList
	if err := x.Client.List(ctx, &canaries, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, false
	}
	var deps appsv1.DeploymentList
	if err := x.Client.List(ctx, &deps, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, false
	}
	byName := make(map[string]*appsv1.Deployment, len(deps.Items))
	for i := range deps.Items {
		byName[deps.Items[i].Name] = &deps.Items[i]
	}
	return canaries.Items, byName, true
}

func requestsFor(canaries []v1alpha1.Canary, keep func(*v1alpha1.Canary) bool) []reconcile.Request {
	var reqs []reconcile.Request
	for i := range canaries {
		if keep(&canaries[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&canaries[i])})
		}
	}
	return reqs
}

// tracksSelect reports whether either track's selector matches set.
func tracksSelect(t build.Tracks, set labels.Set) bool {
	return len(t.Stable) > 0 && labels.SelectorFromSet(t.Stable).Matches(set) ||
		len(t.Canary) > 0 && labels.SelectorFromSet(t.Canary).Matches(set)
}

// releasePods are the pods the builder needs of a namespace: those either
// track selects, and any other pod reporting the IP of one of them (the
// builder gives an address to one pod only, and must still see a newer
// pod that took it over). The result is a copy.
func (x *Controller) releasePods(ctx context.Context, ns string, t build.Tracks) ([]corev1.Pod, error) {
	var out []corev1.Pod
	seen := map[string]bool{}
	var ips []string
	for _, sel := range []map[string]string{t.Stable, t.Canary} {
		if len(sel) == 0 {
			continue
		}
		// Every pod the selector matches has its first label.
		pods, err := x.podsWith(ctx, ns, podLabelIndex, pairs(sel)[0])
		if err != nil {
			return nil, err
		}
		for i := range pods {
			p := &pods[i]
			if seen[p.Name] || !tracksSelect(t, labels.Set(p.Labels)) {
				continue
			}
			seen[p.Name] = true
			out = append(out, *p.DeepCopy())
			if p.Status.PodIP != "" {
				ips = append(ips, p.Status.PodIP)
			}
		}
	}
	slices.Sort(ips)
	for _, ip := range slices.Compact(ips) {
		pods, err := x.podsWith(ctx, ns, podIPIndex, ip)
		if err != nil {
			return nil, err
		}
		for i := range pods {
			if p := &pods[i]; !seen[p.Name] {
				seen[p.Name] = true
				out = append(out, *p.DeepCopy())
			}
		}
	}
	return out, nil
}

// releaseObjects are the pods (releasePods) and the Service (the one the
// effective spec names) the builder needs for c, copied from the cache.
func (x *Controller) releaseObjects(ctx context.Context, c *v1alpha1.Canary, target *appsv1.Deployment) ([]corev1.Pod, []corev1.Service, error) {
	pods, err := x.releasePods(ctx, c.Namespace, build.TracksOf(target))
	if err != nil {
		return nil, nil, err
	}
	spec, _ := v1alpha1.ResolveSpec(c, target)
	var svc corev1.Service
	err = x.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: spec.Service.Name}, &svc)
	switch {
	case apierrors.IsNotFound(err) || spec.Service.Name == "":
		return pods, nil, nil
	case err != nil:
		return nil, nil, err
	}
	return pods, []corev1.Service{svc}, nil
}
