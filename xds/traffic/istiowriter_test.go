package traffic

import (
	"context"
	"errors"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/serin-dev/serin/internal/scheme"
	"github.com/serin-dev/serin/xds/istio"
	"github.com/serin-dev/serin/xds/model"
	"github.com/serin-dev/serin/xds/translate"
)

// applyKey names what an apply configuration applies.
type applyKey interface {
	GetKind() string
	GetNamespace() string
}

// TestIstioWriterBootstrapNamespaces: the bootstrap ConfigMap goes to the
// granted namespaces only (no Namespace is listed); a namespace where the
// API server forbids it is reported as Forbidden, does not stop the
// others, and is not retried until the release changes; any other error
// is returned as it is and retried.
func TestIstioWriterBootstrapNamespaces(t *testing.T) {
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	var applied []string
	failIn := map[string]error{"denied": apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "serin-xds-bootstrap", errors.New("no RBAC"))}
	c := fake.NewClientBuilder().WithScheme(s).WithInterceptorFuncs(interceptor.Funcs{
		Apply: func(_ context.Context, _ client.WithWatch, obj runtime.ApplyConfiguration, _ ...client.ApplyOption) error {
			k := obj.(applyKey)
			if k.GetKind() != "ConfigMap" {
				return nil
			}
			ns := k.GetNamespace()
			applied = append(applied, ns)
			return failIn[ns]
		},
	}).Build()
	w := &IstioWriter{Client: c, BootstrapNamespaces: []string{"team-a", "denied", "team-b"}, Options: istio.Options{
		XDSAddress: "serin-xds.serin-system.svc:18000",
		Translate:  translate.Options{Source: translate.ConfigSource{Kind: translate.SourceStaticCluster}},
		// Plaintext: this test is about where the ConfigMap goes, not
		// about the TLS in it.
		XDSPlaintext: true,
	}}
	rel := &model.Release{Namespace: "shop", Service: "podinfo", Port: 9898, Protocol: model.HTTP,
		Stable: model.TrackEndpoints{Revision: "a"}, Canary: model.TrackEndpoints{Revision: "b"}, CanaryWeight: 10}
	ctx := context.Background()

	err = w.Write(ctx, rel)
	if !apierrors.IsForbidden(err) {
		t.Fatalf("first write: %v, want Forbidden", err)
	}
	if want := []string{"team-a", "denied", "team-b"}; !slices.Equal(applied, want) {
		t.Fatalf("ConfigMaps applied in %v, want %v", applied, want)
	}
	applied = nil
	if err := w.Write(ctx, rel); err != nil || len(applied) != 0 {
		t.Fatalf("unchanged release written again: %v, ConfigMaps in %v", err, applied)
	}

	failIn["denied"] = apierrors.NewServiceUnavailable("etcd")
	rel.Port = 9899 // another release: written
	if err := w.Write(ctx, rel); err == nil || apierrors.IsForbidden(err) {
		t.Fatalf("write on an unavailable API server: %v, want that error", err)
	}
	applied = nil
	delete(failIn, "denied")
	if err := w.Write(ctx, rel); err != nil || !slices.Contains(applied, "denied") {
		t.Fatalf("retry after a transient error: %v, ConfigMaps in %v", err, applied)
	}
}
