// Package traffic keeps serin's embedded xDS server serving exactly what
// each Canary's status says (weight, mirroring, A/B matches) for the pods
// of both tracks, on every replica, and tells the release engine when the
// data plane has applied it. It is the Kubernetes-facing side of the xds
// stack: it reads Canaries, Deployments, Pods and Services, hands them to
// the pure builder and translator, publishes the result, writes the Istio
// objects that splice releases into Istio's Envoys, and shares what this
// replica's proxies applied, and the load they reported, with the other
// replicas through Leases (peers.go, loadshare.go). Endpoints come from
// Pods, never EndpointSlices.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/xds/build"
	"github.com/serin-dev/serin/xds/model"
	"github.com/serin-dev/serin/xds/server"
	"github.com/serin-dev/serin/xds/translate"
)

// Publisher is what the Controller needs of the xDS server.
type Publisher interface {
	Publish(key string, res *translate.Resources) (server.Generation, error)
	Remove(key string) error
	Applied(names []string, gen server.Generation) server.AppliedStatus
	// Changes moves whenever an answer of Applied may have changed.
	Changes() uint64
	SetReady()
}

var _ Publisher = (*server.Server)(nil)

// Controller serves each Canary's traffic. It runs on every replica (the
// xDS server does), follows Canary status, Deployments and Pods, and
// answers the engine's "is it applied?" question.
type Controller struct {
	Client    client.Client
	Server    Publisher
	Translate translate.Options
	// Istio, when set, also writes the EnvoyFilters that splice the
	// release into Istio's Envoys.
	Istio *IstioWriter
	// Recorder reports rejected configurations on the Canary.
	Recorder events.EventRecorder
	// Wakeups gets the Canary whose traffic every proxy has applied; the
	// release engine watches it.
	Wakeups chan event.GenericEvent
	// Peers shares what each replica's proxies applied; nil for a single
	// replica.
	Peers *Peers
	// Loads, when set, shares this replica's load reports with the
	// leader (see LoadShare).
	Loads *LoadShare
	// Hosts, when set, limits the hosts served to those the Canary's
	// namespace owns.
	Hosts HostOwners
	// Routes, when set, carries the releases whose spec.provider chooses a
	// Gateway API route or an SMI TrafficSplit instead of serin's xDS.
	Routes *RouteWriter

	mu         sync.Mutex
	published  map[types.NamespacedName]*published
	hostChecks map[types.NamespacedName]*hostCheck
	// reported is the last report and the server's Changes it was made
	// at: the report is made again only once they moved (at a thousand
	// idle releases, making it every second was a tenth of serin's CPU).
	reported        map[string]PeerEntry
	reportedChanges uint64
	reportedOK      bool
}

// published is what was last served for a Canary.
type published struct {
	key   string
	names []string
	// traffic is the status traffic it serves; gen the Publish that first
	// served it (later endpoint changes do not reset it), latest the last
	// Publish (whose content a proxy may still reject).
	traffic traffic
	gen     server.Generation
	latest  server.Generation
	pending bool
	canary  *v1alpha1.Canary
	nacked  string
	// rel is the model last published.
	rel *model.Release
	// route is the route object last written for a release whose router
	// is a Gateway API route or an SMI TrafficSplit; routeErr why none
	// could be written.
	route    client.Object
	routeErr string
	// acceptedAt is when the route's controllers were first seen to
	// accept it (for istiod's proxies to apply what it had then).
	acceptedAt time.Time
	// kindMissing is whether routeErr is the route kind not being
	// installed: the write is retried, since the kind may come later.
	kindMissing bool
	// istio is whether Istio objects were written for it.
	istio bool
}

type traffic struct {
	weight        int32
	mirror, match bool
	revisions     string
}

func (t traffic) String() string {
	return fmt.Sprintf("%d/%t/%t/%s", t.weight, t.mirror, t.match, t.revisions)
}

func trafficOf(c *v1alpha1.Canary) traffic {
	return traffic{weight: c.Status.CanaryWeight, mirror: c.Status.Mirroring, match: c.Status.Matching,
		revisions: c.Status.StableRevision + "/" + c.Status.CanaryRevision}
}

// SetupWithManager registers the controller (not leader-elected) and the
// start-up restore, which publishes every Canary from its status before
// the xDS server answers anyone.
func (x *Controller) SetupWithManager(mgr ctrl.Manager) error {
	x.published = map[types.NamespacedName]*published{}
	x.hostChecks = map[types.NamespacedName]*hostCheck{}
	if err := RegisterIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("traffic").
		For(&v1alpha1.Canary{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(x.canariesOfPod), builder.WithPredicates(podChanged)).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(x.canariesOfDeployment), builder.WithPredicates(deploymentSpecChanged)).
		// A Service's exportTo says who may receive its release.
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(x.canariesOfService)).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false), MaxConcurrentReconciles: 4}).
		Complete(x); err != nil {
		return err
	}
	// Every replica serves xDS, so the restore runs on every replica too.
	return mgr.Add(everyReplica(x.restoreAndServe))
}

// everyReplica is a Runnable that runs on every replica, not only the leader.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }

var _ manager.LeaderElectionRunnable = everyReplica(nil)

// restoreAndServe waits for the caches, publishes every Canary's traffic
// from status, then lets the xDS server answer; afterwards it watches for
// proxies to apply what was published.
func (x *Controller) restoreAndServe(ctx context.Context) error {
	log := logr.FromContextOrDiscard(ctx).WithName("traffic")
	start := time.Now()
	var list v1alpha1.CanaryList
	for {
		err := x.Client.List(ctx, &list)
		if err == nil {
			break
		}
		log.Error(err, "list canaries for restore; retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	var errs []error
	for i := range list.Items {
		c := &list.Items[i]
		if _, err := x.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		log.Error(err, "some releases could not be restored; serving the others")
	}
	x.Server.SetReady()
	log.Info("traffic restored from canary status; xDS serving", "releases", len(list.Items), "took", time.Since(start))
	x.watchApplied(ctx)
	return nil
}

// watchApplied wakes the engine when proxies applied pending traffic.
func (x *Controller) watchApplied(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var lastReport time.Time
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if x.Peers != nil {
			_ = x.Peers.Forget(ctx)
		}
		// The load Lease stays: its counts still count (see LoadShare).
		if x.Loads != nil {
			_ = x.Loads.Publish(ctx, time.Now())
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
			x.share(ctx, lastReport)
		}
		var wake []*v1alpha1.Canary
		x.mu.Lock()
		var pending []*published
		for _, p := range x.published {
			if p.pending {
				pending = append(pending, p)
			}
		}
		x.mu.Unlock()
		for _, p := range pending {
			applied, _, rejected := x.Applied(ctx, p.canary)
			if applied || rejected != "" {
				x.mu.Lock()
				p.pending = false
				x.mu.Unlock()
				wake = append(wake, p.canary)
			}
		}
		for _, c := range wake {
			if x.Wakeups != nil {
				select {
				case x.Wakeups <- event.GenericEvent{Object: c}:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// share writes what this replica's proxies applied and the load they
// reported for the other replicas.
func (x *Controller) share(ctx context.Context, now time.Time) {
	log := logr.FromContextOrDiscard(ctx)
	if x.Peers != nil {
		if err := x.Peers.Report(ctx, x.report(), now); err != nil {
			log.Error(err, "cannot share applied traffic with the other replicas")
		}
	}
	if x.Loads != nil {
		if err := x.Loads.Publish(ctx, now); err != nil {
			log.Error(err, "cannot share load reports with the other replicas")
		}
	}
}

func (x *Controller) canariesInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.CanaryList
	if err := x.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, c := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&c)})
	}
	return reqs
}

// Reconcile publishes one Canary's traffic.
func (x *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var c v1alpha1.Canary
	err := x.Client.Get(ctx, req.NamespacedName, &c)
	if apierrors.IsNotFound(err) || err == nil && c.Status.Phase == v1alpha1.PhaseTerminated {
		return reconcile.Result{}, x.remove(ctx, req.NamespacedName)
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if c.Status.Phase == "" {
		// Not initialised yet: the engine writes status first.
		return reconcile.Result{}, nil
	}
	owned, err := x.ownedHosts(ctx, &c)
	if err != nil {
		return reconcile.Result{}, err
	}
	in := build.Input{Canary: owned}
	var d appsv1.Deployment
	if err := x.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: c.TargetName()}, &d); err == nil {
		in.Target = &d
	} else if !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	if in.Pods, in.Services, err = x.releaseObjects(ctx, owned, in.Target); err != nil {
		return reconcile.Result{}, err
	}
	rel, err := build.Release(in)
	if err != nil {
		// The last good config stays served.
		logr.FromContextOrDiscard(ctx).Error(err, "cannot build release; keeping the last good config")
		return reconcile.Result{}, nil
	}
	if rel == nil {
		// No port without the Deployment: keep serving the last release
		// with the traffic now in status, so that proxies can confirm the
		// weight 0 that ends a release whose Deployment was deleted.
		if rel = x.lastRelease(req.NamespacedName, &c); rel == nil {
			return reconcile.Result{}, nil
		}
	}
	if err := x.publish(ctx, &c, rel); err != nil {
		return reconcile.Result{}, err
	}
	return x.retryMissingKind(req.NamespacedName), nil
}

// kindRetry is how often the route of a release whose route kind is not
// installed is written again: installing the kind (Linkerd's SMI
// extension, Gateway API's CRDs) lets a halted release go on.
const kindRetry = 5 * time.Second

// retryMissingKind asks for another Reconcile of a release whose route
// kind is not installed; nothing else would wake it.
func (x *Controller) retryMissingKind(key types.NamespacedName) reconcile.Result {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p := x.published[key]; p != nil && p.kindMissing {
		return reconcile.Result{RequeueAfter: kindRetry}
	}
	return reconcile.Result{}
}

// writeRoute writes the route object of a release whose router is a
// Gateway API route or an SMI TrafficSplit into p, from prev (what was
// published before). What no retry can mend (a route of that name that is
// not serin's, a match the router cannot express, a kind not installed, a
// write serin's RBAC forbids) is kept as the release's rejection: the
// engine halts there and says why.
func (x *Controller) writeRoute(ctx context.Context, c *v1alpha1.Canary, rel *model.Release, router v1alpha1.Router, prev, p *published) error {
	var last client.Object
	if prev != nil {
		last = prev.route
	}
	obj, err := x.Routes.Write(ctx, c, rel, router, last)
	var notOurs errNotOurs
	var invalid errInvalidRoute
	switch {
	case errors.As(err, &notOurs) || errors.As(err, &invalid) || meta.IsNoMatchError(err) || apierrors.IsForbidden(err):
		msg := err.Error()
		if prev == nil || prev.routeErr != msg {
			logr.FromContextOrDiscard(ctx).Error(err, "cannot write the release's route", "release", rel.Key())
		}
		x.mu.Lock()
		p.route, p.routeErr, p.kindMissing = nil, msg, meta.IsNoMatchError(err)
		x.mu.Unlock()
	case err != nil:
		return err
	default:
		x.mu.Lock()
		if obj != last {
			p.acceptedAt = time.Time{}
		}
		p.route, p.routeErr, p.kindMissing = obj, "", false
		x.mu.Unlock()
	}
	return nil
}

func (x *Controller) publish(ctx context.Context, c *v1alpha1.Canary, rel *model.Release) error {
	res, err := translate.Translate(rel, x.Translate)
	if err != nil {
		logr.FromContextOrDiscard(ctx).Error(err, "translate release; keeping the last good config", "release", rel.Key())
		return nil
	}
	key := client.ObjectKeyFromObject(c)
	x.mu.Lock()
	prev := x.published[key]
	if prev != nil && prev.key != rel.Key() {
		// The service or port changed: stop serving the old one.
		_ = x.Server.Remove(prev.key)
		prev = nil
	}
	gen, err := x.Server.Publish(rel.Key(), res)
	if err != nil {
		x.mu.Unlock()
		return fmt.Errorf("publish %s: %w", rel.Key(), err)
	}
	want := trafficOf(c)
	p := &published{key: rel.Key(), names: resourceNames(res), traffic: want, gen: gen, latest: gen, pending: true, canary: c.DeepCopy(), rel: rel}
	if prev != nil && prev.traffic == want {
		// Same traffic, new endpoints: the traffic was in force since then.
		p.gen, p.pending, p.nacked = prev.gen, prev.pending, prev.nacked
	}
	if prev != nil {
		p.route, p.routeErr, p.acceptedAt, p.kindMissing = prev.route, prev.routeErr, prev.acceptedAt, prev.kindMissing
	}
	x.published[key] = p
	x.mu.Unlock()
	// A release whose provider names a route router is carried by that
	// route too (and by serin's xDS server for the proxies subscribed to
	// it), and not by Istio's EnvoyFilters: the route drives the mesh.
	if router := x.Routes.RouterOf(c); router != v1alpha1.RouterXDS {
		if x.Istio != nil && (prev == nil || prev.istio) {
			if err := x.Istio.Delete(ctx, rel.Key()); err != nil {
				return err
			}
		}
		return x.writeRoute(ctx, c, rel, router, prev, p)
	}
	if p.route != nil {
		if err := x.Routes.Delete(ctx, p.route); err != nil {
			return err
		}
	}
	x.mu.Lock()
	p.route, p.routeErr, p.kindMissing, p.istio = nil, "", false, x.Istio != nil
	x.mu.Unlock()
	if x.Istio == nil {
		return nil
	}
	err = x.Istio.Write(ctx, rel)
	if apierrors.IsForbidden(err) {
		// Retrying cannot help: only an admin granting serin the
		// permission can. Say so where the release's owner looks.
		logr.FromContextOrDiscard(ctx).Error(err, "serin lacks permission to write Istio objects", "release", rel.Key())
		if x.Recorder != nil {
			x.Recorder.Eventf(c, nil, corev1.EventTypeWarning, "Forbidden", "IstioWrite",
				"serin may not write an Istio object for this release (check the chart's istio.bootstrap.namespaces and watchNamespaces): %v", err)
		}
		return nil
	}
	return err
}

// lastRelease is the release last published for a Canary with the
// traffic of its status now, without the canary's endpoints; nil when
// nothing was published.
func (x *Controller) lastRelease(key types.NamespacedName, c *v1alpha1.Canary) *model.Release {
	x.mu.Lock()
	p := x.published[key]
	x.mu.Unlock()
	if p == nil || p.rel == nil {
		return nil
	}
	rel := *p.rel
	rel.CanaryWeight = uint32(c.Status.CanaryWeight)
	rel.Canary = model.TrackEndpoints{Revision: c.Status.CanaryRevision}
	if c.Status.CanaryWeight == 0 {
		rel.SessionAffinity = nil
	}
	if !c.Status.Mirroring {
		rel.Mirror = nil
	}
	if !c.Status.Matching {
		rel.Match = nil
	}
	return &rel
}

func (x *Controller) remove(ctx context.Context, key types.NamespacedName) error {
	x.mu.Lock()
	p := x.published[key]
	delete(x.published, key)
	delete(x.hostChecks, key)
	x.mu.Unlock()
	if p == nil {
		return nil
	}
	if p.route != nil {
		if err := x.Routes.Delete(ctx, p.route); err != nil {
			return err
		}
	}
	if err := x.Server.Remove(p.key); err != nil {
		return err
	}
	if x.Istio != nil {
		return x.Istio.Delete(ctx, p.key)
	}
	return nil
}

// Applied answers the release engine: has every subscribed proxy, on
// every replica, applied the traffic now in c's status?
func (x *Controller) Applied(ctx context.Context, c *v1alpha1.Canary) (bool, int, string) {
	applied, proxies, rejected := x.xdsApplied(ctx, c)
	if rejected != "" || x.Routes.RouterOf(c) == v1alpha1.RouterXDS {
		return applied, proxies, rejected
	}
	routed, parents, rejected := x.routeApplied(ctx, c)
	return applied && routed, proxies + parents, rejected
}

// xdsApplied answers for the proxies subscribed to serin's xDS server.
func (x *Controller) xdsApplied(ctx context.Context, c *v1alpha1.Canary) (bool, int, string) {
	applied, proxies, rejected := x.localApplied(c)
	if rejected != "" {
		x.reportNACK(c, rejected)
	}
	if x.Peers == nil || rejected != "" {
		return applied, proxies, rejected
	}
	others, err := x.Peers.Others(ctx, client.ObjectKeyFromObject(c).String(), time.Now())
	if err != nil {
		return false, proxies, ""
	}
	want := trafficOf(c).String()
	for _, e := range others {
		proxies += e.Proxies
		switch {
		case e.Rejected != "":
			return false, proxies, e.Rejected
		case e.Proxies > 0 && (e.Traffic != want || !e.Applied):
			applied = false
		}
	}
	return applied, proxies, ""
}

// routeApplied answers for a release carried by a route object: the
// route's controllers (or, for a TrafficSplit, the API server) say.
func (x *Controller) routeApplied(ctx context.Context, c *v1alpha1.Canary) (bool, int, string) {
	x.mu.Lock()
	var route client.Object
	var routeErr string
	p := x.published[client.ObjectKeyFromObject(c)]
	current := p != nil && p.traffic == trafficOf(c)
	if current {
		route, routeErr = p.route, p.routeErr
	}
	x.mu.Unlock()
	switch {
	case routeErr != "":
		return false, 0, routeErr
	case route == nil:
		return false, 0, ""
	}
	ok, parents, rejected := x.Routes.Applied(ctx, c, route)
	if !ok || x.Routes.Istiod == nil || x.Routes.RouterOf(c) != v1alpha1.RouterGatewayAPI {
		return ok, parents, rejected
	}
	// Accepted: now istiod's proxies must apply what istiod then had.
	now := time.Now()
	x.mu.Lock()
	if p.acceptedAt.IsZero() && p.route == route {
		p.acceptedAt = now
	}
	at := p.acceptedAt
	x.mu.Unlock()
	if at.IsZero() {
		return false, parents, ""
	}
	synced, proxies, rejected, err := x.Routes.Istiod.Synced(ctx, at, now)
	if err != nil {
		logr.FromContextOrDiscard(ctx).Error(err, "cannot read what istiod's proxies applied")
		return false, parents, ""
	}
	return synced, proxies, rejected
}

// localApplied answers for the proxies connected to this replica.
func (x *Controller) localApplied(c *v1alpha1.Canary) (bool, int, string) {
	x.mu.Lock()
	p := x.published[client.ObjectKeyFromObject(c)]
	x.mu.Unlock()
	if p == nil || p.traffic != trafficOf(c) {
		return false, 0, ""
	}
	return x.appliedOf(p)
}

// appliedOf is what this replica's proxies applied of a publication.
func (x *Controller) appliedOf(p *published) (bool, int, string) {
	st := x.Server.Applied(p.names, p.gen)
	nacked := st.Nacked
	if len(nacked) == 0 && p.latest != p.gen {
		// The traffic has been in force since gen, but what was published
		// since (a feature switched on, new endpoints) was rejected: that
		// halts the release too, or it would step on with a rejected config.
		nacked = x.Server.Applied(p.names, p.latest).Nacked
	}
	if len(nacked) > 0 {
		n := nacked[0]
		return false, st.Subscribed, fmt.Sprintf("proxy %s rejected %s %s: %s", n.Node, shortType(n.TypeURL), n.Resource, n.Message)
	}
	return st.Done(), st.Subscribed, ""
}

// report is this replica's part of every release, for the other replicas.
func (x *Controller) report() map[string]PeerEntry {
	x.mu.Lock()
	// Publications change the server's counter under x.mu too, so the
	// counter read here goes with this copy of the publications.
	changes := x.Server.Changes()
	if x.reportedOK && changes == x.reportedChanges {
		out := x.reported
		x.mu.Unlock()
		return out
	}
	pubs := make(map[types.NamespacedName]*published, len(x.published))
	maps.Copy(pubs, x.published)
	x.mu.Unlock()
	out := x.freshReport(pubs)
	x.mu.Lock()
	x.reported, x.reportedChanges, x.reportedOK = out, changes, true
	x.mu.Unlock()
	return out
}

// freshReport is this replica's part of the publications pubs.
func (x *Controller) freshReport(pubs map[types.NamespacedName]*published) map[string]PeerEntry {
	out := map[string]PeerEntry{}
	for key, p := range pubs {
		applied, proxies, rejected := x.appliedOf(p)
		if proxies == 0 && rejected == "" {
			continue
		}
		out[key.String()] = PeerEntry{Traffic: p.traffic.String(), Proxies: proxies, Applied: applied, Rejected: rejected}
	}
	return out
}

// reportNACK records a rejection on the Canary once per published traffic.
func (x *Controller) reportNACK(c *v1alpha1.Canary, msg string) {
	x.mu.Lock()
	p := x.published[client.ObjectKeyFromObject(c)]
	first := p != nil && p.nacked == ""
	if p != nil {
		p.nacked = msg
	}
	x.mu.Unlock()
	if first && x.Recorder != nil {
		x.Recorder.Eventf(c, nil, corev1.EventTypeWarning, "TrafficRejected", "Release", "The data plane rejected serin's configuration: %s", msg)
	}
}

func shortType(url string) string {
	for i := len(url) - 1; i >= 0; i-- {
		if url[i] == '.' {
			return url[i+1:]
		}
	}
	return url
}

func resourceNames(res *translate.Resources) []string {
	var names []string
	for _, r := range res.Clusters {
		names = append(names, r.GetName())
	}
	for _, r := range res.Endpoints {
		names = append(names, r.GetClusterName())
	}
	for _, r := range res.Routes {
		names = append(names, r.GetName())
	}
	for _, r := range res.Listeners {
		names = append(names, r.GetName())
	}
	return names
}
