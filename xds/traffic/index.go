package traffic

import (
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// The traffic controller finds the objects of a release through cache
// indexes rather than by listing a namespace: at a thousand releases a
// namespace holds hundreds of pods and Deployments, and listing them on
// every pod event and every rebuild was most of serin's CPU.
const (
	// podLabelIndex files a pod under each of its labels ("key=value").
	podLabelIndex = "serin.traffic/pod-label"
	// podIPIndex files a pod under its address.
	podIPIndex = "serin.traffic/pod-ip"
	// selectorIndex files a Deployment under each label its stable pods
	// and its canary copy's pods are selected by ("key=value").
	selectorIndex = "serin.traffic/selector"
	// canaryTargetIndex files a Canary under the Deployment it releases.
	canaryTargetIndex = "serin.traffic/target"
)

// Index is one cache index the controller reads.
type Index struct {
	Object client.Object
	Field  string
	Func   client.IndexerFunc
}

// Indexes are the cache indexes the controller needs, for
// SetupWithManager (and for test clients).
func Indexes() []Index {
	return []Index{
		{&corev1.Pod{}, podLabelIndex, func(o client.Object) []string { return pairs(o.GetLabels()) }},
		{&corev1.Pod{}, podIPIndex, func(o client.Object) []string {
			if ip := o.(*corev1.Pod).Status.PodIP; ip != "" {
				return []string{ip}
			}
			return nil
		}},
		{&appsv1.Deployment{}, selectorIndex, func(o client.Object) []string {
			d := o.(*appsv1.Deployment)
			if d.Spec.Selector == nil {
				return nil
			}
			sel := d.Spec.Selector.MatchLabels
			return append(pairs(sel), pairs(v1alpha1.CanarySelector(sel))...)
		}},
		{&v1alpha1.Canary{}, canaryTargetIndex, func(o client.Object) []string {
			return []string{o.(*v1alpha1.Canary).TargetName()}
		}},
	}
}

func pairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// RegisterIndexes adds the controller's indexes to a manager's cache.
func RegisterIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	for _, ix := range Indexes() {
		if err := indexer.IndexField(ctx, ix.Object, ix.Field, ix.Func); err != nil {
			return fmt.Errorf("index %s: %w", ix.Field, err)
		}
	}
	return nil
}

// canariesOf are the Canaries of a namespace that release target (or its
// copy's target), uncopied from the cache.
func (x *Controller) canariesOf(ctx context.Context, ns, target string) ([]v1alpha1.Canary, error) {
	var list v1alpha1.CanaryList
	err := x.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{canaryTargetIndex: target}, client.UnsafeDisableDeepCopy)
	return list.Items, err
}

// selecting are the Deployments of a namespace whose stable or canary
// selector has one of the labels, each once, uncopied from the cache: the
// only ones whose releases may select a pod with those labels.
func (x *Controller) selecting(ctx context.Context, ns string, lbls map[string]string) ([]*appsv1.Deployment, error) {
	var out []*appsv1.Deployment
	seen := map[string]bool{}
	for _, p := range pairs(lbls) {
		var list appsv1.DeploymentList
		if err := x.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{selectorIndex: p}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for i := range list.Items {
			if d := &list.Items[i]; !seen[d.Name] {
				seen[d.Name] = true
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// podsWith are a namespace's pods filed under one value of an index,
// uncopied from the cache.
func (x *Controller) podsWith(ctx context.Context, ns, field, value string) ([]corev1.Pod, error) {
	var list corev1.PodList
	err := x.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{field: value}, client.UnsafeDisableDeepCopy)
	return list.Items, err
}
