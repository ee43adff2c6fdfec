package app

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
