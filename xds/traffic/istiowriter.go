package traffic

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/serin-dev/serin/xds/istio"
	"github.com/serin-dev/serin/xds/model"
	"github.com/serin-dev/serin/xds/translate"
)

// LabelIstioBootstrap on a namespace opts its new pods into serin's
// bootstrap override (the pod webhook's namespaceSelector), in the
// namespaces where serin may write the ConfigMap (BootstrapNamespaces).
const LabelIstioBootstrap = "serin.dev/istio-bootstrap"

// IstioWriter keeps, per release, the EnvoyFilters that splice serin's
// clusters and routes into Istio's Envoys, and the bootstrap-override
// ConfigMap in each of BootstrapNamespaces. Writes are server-side
// applies, so every replica may write the same objects.
//
// An apply the API server forbids (serin's RBAC does not cover it) is
// returned as an error for which apierrors.IsForbidden holds, after every
// other write was made: the caller reports it instead of retrying.
type IstioWriter struct {
	Client  client.Client
	Options istio.Options
	// BootstrapNamespaces are where serin keeps its bootstrap-override
	// ConfigMap (bootstrap-override mode): the namespaces its RBAC lets it
	// write that ConfigMap in, by name.
	BootstrapNamespaces []string
	// CABundle, when set, returns serin's current CA bundle (PEM), with
	// which Istio's proxies verify serin: inlined in the bootstrap
	// ConfigMaps (bootstrap-override mode) and as the root of the
	// google_grpc channels (google-grpc mode). Nothing is written while it
	// is empty. Nil: Options are used as they are.
	CABundle func() []byte

	mu   sync.Mutex
	last map[string]string         // release key → hash of what was applied
	rels map[string]*model.Release // release key → last release written
}

// errNoCABundle holds writes back until serin's CA is loaded.
var errNoCABundle = errors.New("serin's CA bundle is not loaded yet")

// options are Options with the current CA bundle.
func (w *IstioWriter) options() (istio.Options, error) {
	o := w.Options
	if w.CABundle == nil {
		return o, nil
	}
	b := w.CABundle()
	if len(b) == 0 {
		return o, errNoCABundle
	}
	if o.Translate.Source.Kind == translate.SourceGoogleGRPC {
		o.Translate.Source.RootCA = string(b)
	} else {
		o.XDSCABundle = string(b)
	}
	return o, nil
}

const fieldOwner = client.FieldOwner("serin")

// Write applies the release's EnvoyFilters when they changed (weight steps
// do not change them: weights live in EDS).
func (w *IstioWriter) Write(ctx context.Context, rel *model.Release) error {
	opts, err := w.options()
	if err != nil {
		return err
	}
	efs, err := istio.RenderEnvoyFilters(rel, opts)
	if err != nil {
		return fmt.Errorf("render envoyfilters: %w", err)
	}
	vs := istio.RenderVirtualService(rel)
	b, err := json.Marshal(struct {
		EnvoyFilters   any
		VirtualService any
	}{efs, vs})
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:])
	w.mu.Lock()
	same := w.last[rel.Key()] == hash
	w.mu.Unlock()
	if same {
		return nil
	}
	keep := map[string]bool{}
	for _, ef := range efs {
		ef.SetManagedFields(nil)
		ef.SetResourceVersion("")
		if err := w.apply(ctx, ef); err != nil {
			return fmt.Errorf("apply envoyfilter %s/%s: %w", ef.Namespace, ef.Name, err)
		}
		keep[ef.Namespace+"/"+ef.Name] = true
	}
	if err := w.prune(ctx, istio.ReleaseHash(rel), keep); err != nil {
		return err
	}
	if err := w.virtualService(ctx, rel, vs); err != nil {
		return err
	}
	// A forbidden bootstrap write is remembered like a made one: the
	// caller reports it, and it is tried again when the release changes.
	berr := w.bootstrap(ctx, opts)
	if berr != nil && !apierrors.IsForbidden(berr) {
		return berr
	}
	w.mu.Lock()
	if w.last == nil {
		w.last, w.rels = map[string]string{}, map[string]*model.Release{}
	}
	w.last[rel.Key()] = hash
	w.rels[rel.Key()] = rel
	w.mu.Unlock()
	return berr
}

// Refresh rewrites the bootstrap ConfigMaps and every release's
// EnvoyFilters that changed with the CA bundle (a rotation of serin's CA):
// the bootstrap ConfigMaps for proxies that start from now on, the
// google_grpc roots for the running ones.
func (w *IstioWriter) Refresh(ctx context.Context) error {
	opts, err := w.options()
	if err != nil {
		return err
	}
	if err := w.bootstrap(ctx, opts); err != nil && !apierrors.IsForbidden(err) {
		return err
	}
	w.mu.Lock()
	keys := slices.Sorted(maps.Keys(w.rels))
	rels := make([]*model.Release, 0, len(keys))
	for _, k := range keys {
		rels = append(rels, w.rels[k])
	}
	w.mu.Unlock()
	var errs []error
	for _, rel := range rels {
		errs = append(errs, w.Write(ctx, rel))
	}
	return errors.Join(errs...)
}

// FollowCA calls Refresh after every value of changes (serin's CA bundle
// changed) until ctx ends, retrying a failed refresh after retry.
func (w *IstioWriter) FollowCA(ctx context.Context, changes <-chan struct{}, retry time.Duration) error {
	log := logr.FromContextOrDiscard(ctx).WithName("istio")
	var again <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		case <-again:
		}
		again = nil
		if err := w.Refresh(ctx); err != nil {
			log.Error(err, "cannot refresh Istio objects after a change of serin's CA", "retryIn", retry)
			again = time.After(retry)
			continue
		}
		log.Info("Istio objects refreshed with serin's CA bundle")
	}
}

// Delete removes a release's EnvoyFilters, in every namespace.
func (w *IstioWriter) Delete(ctx context.Context, key string) error {
	w.mu.Lock()
	delete(w.last, key)
	delete(w.rels, key)
	w.mu.Unlock()
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 {
		return fmt.Errorf("release key %q is not <namespace>/<service>/<port>", key)
	}
	port, err := strconv.ParseUint(parts[2], 10, 32)
	if err != nil {
		return fmt.Errorf("release key %q: %w", key, err)
	}
	rel := model.Release{Namespace: parts[0], Service: parts[1], Port: uint32(port)}
	if err := w.prune(ctx, istio.ReleaseHash(&rel), nil); err != nil {
		return err
	}
	return w.pruneVirtualServices(ctx, istio.ReleaseHash(&rel), "")
}

// virtualService applies the release's VirtualService (vs; nil: it needs
// none) unless a VirtualService of that name exists that serin did not
// make, which is left alone, and removes what the release no longer needs.
func (w *IstioWriter) virtualService(ctx context.Context, rel *model.Release, vs *networkingv1alpha3.VirtualService) error {
	hash := istio.ReleaseHash(rel)
	if vs == nil {
		return w.pruneVirtualServices(ctx, hash, "")
	}
	var cur networkingv1alpha3.VirtualService
	err := w.Client.Get(ctx, client.ObjectKey{Namespace: vs.Namespace, Name: vs.Name}, &cur)
	switch {
	case err == nil && cur.Labels[istio.LabelManagedBy] != istio.ManagedBy:
		logr.FromContextOrDiscard(ctx).Info("a VirtualService of the release's name is not serin's: left alone, it routes the release's hosts",
			"namespace", vs.Namespace, "name", vs.Name)
		return w.pruneVirtualServices(ctx, hash, "")
	case err != nil && !apierrors.IsNotFound(err):
		return fmt.Errorf("get virtualservice %s/%s: %w", vs.Namespace, vs.Name, err)
	}
	if err := w.apply(ctx, vs); err != nil {
		return fmt.Errorf("apply virtualservice %s/%s: %w", vs.Namespace, vs.Name, err)
	}
	return w.pruneVirtualServices(ctx, hash, vs.Namespace+"/"+vs.Name)
}

// pruneVirtualServices deletes the release's VirtualServices but keep
// (namespace/name).
func (w *IstioWriter) pruneVirtualServices(ctx context.Context, hash, keep string) error {
	var list networkingv1alpha3.VirtualServiceList
	if err := w.Client.List(ctx, &list, client.MatchingLabels{istio.LabelRelease: hash, istio.LabelManagedBy: istio.ManagedBy}); err != nil {
		if meta.IsNoMatchError(err) {
			return nil
		}
		return fmt.Errorf("list virtualservices: %w", err)
	}
	for _, vs := range list.Items {
		if vs.Namespace+"/"+vs.Name == keep {
			continue
		}
		if err := w.Client.Delete(ctx, vs); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete virtualservice %s/%s: %w", vs.Namespace, vs.Name, err)
		}
	}
	return nil
}

// prune deletes the release's EnvoyFilters that keep (namespace/name)
// does not list, in every namespace: this also removes what an earlier
// version wrote elsewhere (the sidecar patches used to live in the root
// namespace), on the first write after an upgrade.
func (w *IstioWriter) prune(ctx context.Context, hash string, keep map[string]bool) error {
	var list networkingv1alpha3.EnvoyFilterList
	if err := w.Client.List(ctx, &list, client.MatchingLabels{istio.LabelRelease: hash}); err != nil {
		return fmt.Errorf("list envoyfilters: %w", err)
	}
	for _, ef := range list.Items {
		if keep[ef.Namespace+"/"+ef.Name] {
			continue
		}
		if err := w.Client.Delete(ctx, ef); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete envoyfilter %s/%s: %w", ef.Namespace, ef.Name, err)
		}
	}
	return nil
}

// bootstrap keeps the override ConfigMap in each of BootstrapNamespaces
// (bootstrap-override mode only). The namespaces where the API server
// forbids it are skipped and returned together.
func (w *IstioWriter) bootstrap(ctx context.Context, opts istio.Options) error {
	if opts.XDSAddress == "" {
		return nil
	}
	var forbidden []error
	for _, ns := range w.BootstrapNamespaces {
		cm, err := istio.RenderBootstrapOverride(ns, opts)
		if err != nil {
			return err
		}
		err = w.apply(ctx, cm)
		switch {
		case apierrors.IsForbidden(err):
			forbidden = append(forbidden, fmt.Errorf("apply bootstrap configmap %s in %s: %w", cm.Name, ns, err))
		case err != nil:
			return fmt.Errorf("apply bootstrap configmap in %s: %w", ns, err)
		}
	}
	return errors.Join(forbidden...)
}

// apply server-side applies obj as serin's field manager.
func (w *IstioWriter) apply(ctx context.Context, obj client.Object) error {
	return serverSideApply(ctx, w.Client, obj)
}

// serverSideApply applies obj as serin's field manager, without status.
func serverSideApply(ctx context.Context, c client.Client, obj client.Object) error {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		gvk, err := apiutil.GVKForObject(obj, c.Scheme())
		if err != nil {
			return err
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return err
		}
		u = &unstructured.Unstructured{Object: m}
		u.SetGroupVersionKind(gvk)
	} else {
		u = u.DeepCopy()
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), fieldOwner, client.ForceOwnership)
}
