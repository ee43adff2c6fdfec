package app

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// TestCacheOptions: every informer is namespaced when serin watches some
// namespaces, EnvoyFilters also in Istio's root namespace with Istio on.
func TestCacheOptions(t *testing.T) {
	namespaces := func(m map[string]cache.Config) []string { return slices.Sorted(maps.Keys(m)) }
	byType := func(opts cache.Options, obj client.Object) []string {
		for o, by := range opts.ByObject {
			if reflect.TypeOf(o) == reflect.TypeOf(obj) {
				return namespaces(by.Namespaces)
			}
		}
		return nil
	}
	for _, tt := range []struct {
		name            string
		o               controllerOptions
		defaults, envoy []string
	}{
		{"cluster", controllerOptions{namespace: "serin-system", istioMode: "bootstrap"}, nil, nil},
		{"namespaced", controllerOptions{namespace: "serin-system", istioMode: "none", watchNamespaces: []string{"b", "a"}}, []string{"a", "b"}, nil},
		{"namespaced istio", controllerOptions{namespace: "serin-system", istioMode: "google-grpc", watchNamespaces: []string{"a"}}, []string{"a"}, []string{"a", "istio-system"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := cacheOptions(tt.o)
			if got := namespaces(opts.DefaultNamespaces); !slices.Equal(got, tt.defaults) {
				t.Errorf("default namespaces %v, want %v", got, tt.defaults)
			}
			if got := byType(opts, &coordinationv1.Lease{}); !slices.Equal(got, []string{"serin-system"}) {
				t.Errorf("leases in %v, want serin-system", got)
			}
			if got := byType(opts, &networkingv1alpha3.EnvoyFilter{}); !slices.Equal(got, tt.envoy) {
				t.Errorf("envoyfilters in %v, want %v", got, tt.envoy)
			}
		})
	}
}

// TestCacheKeepsManagedFieldsOnlyWhereRead: Canaries and Services keep
// their managed fields in the cache (serin tells users' edits by them);
// every other kind is cached without, and pods trimmed.
func TestCacheKeepsManagedFieldsOnlyWhereRead(t *testing.T) {
	opts := cacheOptions(controllerOptions{namespace: "serin-system"})
	transformOf := func(obj client.Object) toolscache.TransformFunc {
		for o, by := range opts.ByObject {
			if reflect.TypeOf(o) == reflect.TypeOf(obj) && by.Transform != nil {
				return by.Transform
			}
		}
		return opts.DefaultTransform
	}
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
	for _, tt := range []struct {
		obj  client.Object
		keep bool
	}{
		{&v1alpha1.Canary{}, true},
		{&corev1.Service{}, true},
		{&appsv1.Deployment{}, false},
		{&corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "podinfo"}}}}, false},
		{&coordinationv1.Lease{}, false},
		{&metav1.PartialObjectMetadata{}, false},
	} {
		tt.obj.SetManagedFields(slices.Clone(managed))
		got, err := transformOf(tt.obj)(tt.obj)
		if err != nil {
			t.Fatal(err)
		}
		if kept := len(got.(client.Object).GetManagedFields()) > 0; kept != tt.keep {
			t.Errorf("%T: managed fields kept %v, want %v", tt.obj, kept, tt.keep)
		}
		if p, ok := got.(*corev1.Pod); ok && p.Spec.Containers[0].Image != "" {
			t.Errorf("pods are cached whole, not trimmed: %+v", p.Spec)
		}
	}
}
