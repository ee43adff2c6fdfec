package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-logr/logr"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/scheme"
	"github.com/serin-dev/serin/xds/build"
	"github.com/serin-dev/serin/xds/istio"
)

// newManager makes the manager every part runs in: leader election in
// serin's namespace, the metrics and health endpoints, and the webhook
// server with whOpts.
func newManager(ctx context.Context, cfg *rest.Config, o controllerOptions, log logr.Logger, whOpts webhook.Options) (ctrl.Manager, error) {
	s, err := scheme.New()
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Cache:                         cacheOptions(o),
		Scheme:                        s,
		Logger:                        log,
		Metrics:                       metricsServerOptions(o),
		HealthProbeBindAddress:        o.healthAddress,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "serin.dev",
		LeaderElectionNamespace:       o.namespace,
		LeaderElectionReleaseOnCancel: true,
		WebhookServer:                 webhook.NewServer(whOpts),
		BaseContext:                   func() context.Context { return ctx },
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// cacheOptions limit what serin's informers list and watch: Leases in
// serin's namespace only (replica reports); with --watch-namespaces, every
// other kind in those namespaces only, and EnvoyFilters also in Istio's
// root namespace, so that serin never needs a cluster-wide list.
//
// Cached objects carry no managed fields, except Canaries and Services:
// serin reads theirs to tell a user's edit from its own. Writes are
// unharmed: an update without managed fields leaves the stored ones as
// they are. Pods are cached with only what serin reads of them
// (build.TrimPod); serin never writes one back.
func cacheOptions(o controllerOptions) cache.Options {
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{o.namespace: {}}},
			&v1alpha1.Canary{}:      {Transform: keepManagedFields},
			&corev1.Service{}:       {Transform: keepManagedFields},
			&corev1.Pod{}:           {Transform: build.TrimPod},
		},
	}
	if len(o.watchNamespaces) == 0 {
		return opts
	}
	opts.DefaultNamespaces = map[string]cache.Config{}
	for _, ns := range o.watchNamespaces {
		opts.DefaultNamespaces[ns] = cache.Config{}
	}
	if !strings.EqualFold(o.istioMode, "none") && o.istioMode != "" {
		efs := map[string]cache.Config{istio.DefaultNamespace: {}}
		for _, ns := range o.watchNamespaces {
			efs[ns] = cache.Config{}
		}
		opts.ByObject[&networkingv1alpha3.EnvoyFilter{}] = cache.ByObject{Namespaces: efs}
	}
	return opts
}

// keepManagedFields caches an object as it is.
func keepManagedFields(o any) (any, error) { return o, nil }

// everyReplica is a Runnable that runs on every replica.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
