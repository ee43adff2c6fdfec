package traffic

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/xds/server"
)

// Load reports arrive at whichever replica a proxy is connected to; only
// the leader analyses. Each replica therefore writes the counts it holds
// (its load store, compacted: xds/server's LoadSnapshot) into a Lease of
// its own, serin-load-<identity>, at most once a second and only when
// they changed, and the leader adds every other replica's Lease to its own
// store when analysis asks.
//
// Counts outlive the process that received them: a replica that restarts
// under the same identity reads its Lease back before it writes again,
// and a replica that is gone for good leaves its Lease behind, still
// counted, until everything in it is older than the retention; then any
// replica deletes it. So a release's cumulative counts never drop when a
// replica dies; what a killed replica received in its last second, before
// it could write, is lost.

// Load Lease label and annotation.
const (
	LabelXDSLoad      = "serin.dev/xds-load"
	AnnotationXDSLoad = "serin.dev/xds-load"
)

// LocalLoads is what LoadShare needs of this replica's xDS server.
type LocalLoads interface {
	LoadReports(cluster string, since, until time.Time) map[v1alpha1.Track]v1alpha1.LoadCounts
	LoadSnapshot() (server.LoadSnapshot, uint64)
	SeedLoads(server.LoadSnapshot)
}

var _ LocalLoads = (*server.Server)(nil)

// LoadShare shares this replica's load reports and sums every replica's.
type LoadShare struct {
	Client    client.Client
	Namespace string
	// Identity names this replica (the pod name in a cluster).
	Identity string
	Local    LocalLoads
	// Compaction shapes what is shared (default
	// server.DefaultLoadCompaction); Budget bounds its size in bytes
	// (default server.DefaultLoadBudget).
	Compaction server.LoadCompaction
	Budget     int

	metrics *loadShareMetrics

	// restoring is held while the own Lease is read back, so that it is
	// added to the store once.
	restoring sync.Mutex
	mu        sync.Mutex
	restored  bool
	// written is the text last written, at wroteAt, from the store's
	// generation gen.
	written string
	wroteAt time.Time
	gen     uint64
	peers   map[string]peerLoads
}

type peerLoads struct {
	version string
	snap    server.LoadSnapshot
}

type loadShareMetrics struct {
	writes  prometheus.Counter
	dropped prometheus.Counter
	bytes   prometheus.Gauge
}

// Register registers the sharing's metrics.
func (l *LoadShare) Register(reg prometheus.Registerer) error {
	m := &loadShareMetrics{
		writes: prometheus.NewCounter(prometheus.CounterOpts{Name: "serin_xds_load_share_writes_total",
			Help: "Writes of this replica's load-report Lease."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "serin_xds_load_share_dropped_buckets_total",
			Help: "Load-report buckets left out of this replica's Lease to keep it within its size budget."}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "serin_xds_load_share_bytes",
			Help: "Size of this replica's load-report Lease annotation."}),
	}
	for _, c := range []prometheus.Collector{m.writes, m.dropped, m.bytes} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering load share metrics: %w", err)
		}
	}
	l.metrics = m
	return nil
}

func (l *LoadShare) leaseName() string { return "serin-load-" + replicaName(l.Identity) }

func (l *LoadShare) compaction() server.LoadCompaction {
	if l.Compaction == (server.LoadCompaction{}) {
		return server.DefaultLoadCompaction
	}
	return l.Compaction
}

// Publish writes this replica's counts when new ones arrived since the
// last write, and deletes its Lease once all of them are past the
// retention; the first call restores what this replica wrote before a
// restart. Call it at most once a second.
func (l *LoadShare) Publish(ctx context.Context, now time.Time) error {
	if err := l.restore(ctx); err != nil {
		return err
	}
	snap, gen := l.Local.LoadSnapshot()
	l.mu.Lock()
	due := gen != l.gen || (l.written != "" && now.Sub(l.wroteAt) > l.compaction().Retention)
	l.mu.Unlock()
	if !due {
		return l.sweep(ctx, now)
	}
	budget := l.Budget
	if budget <= 0 {
		budget = server.DefaultLoadBudget
	}
	text, dropped := server.EncodeLoads(l.compaction().Compact(snap, now), budget)
	l.mu.Lock()
	same := text == l.written
	l.mu.Unlock()
	if !same {
		if err := l.write(ctx, text, now); err != nil {
			return err
		}
		if l.metrics != nil {
			l.metrics.writes.Inc()
			l.metrics.bytes.Set(float64(len(text)))
			l.metrics.dropped.Add(float64(dropped))
		}
	}
	l.mu.Lock()
	l.written, l.wroteAt, l.gen = text, now, gen
	l.mu.Unlock()
	return l.sweep(ctx, now)
}

// restore seeds the local store, once, with this replica's own Lease.
func (l *LoadShare) restore(ctx context.Context) error {
	l.restoring.Lock()
	defer l.restoring.Unlock()
	l.mu.Lock()
	done := l.restored
	l.mu.Unlock()
	if done {
		return nil
	}
	lease := &coordinationv1.Lease{}
	err := l.Client.Get(ctx, client.ObjectKey{Namespace: l.Namespace, Name: l.leaseName()}, lease)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("read own load lease: %w", err)
	}
	text := lease.Annotations[AnnotationXDSLoad]
	snap, derr := server.DecodeLoads(text)
	if derr == nil {
		l.Local.SeedLoads(snap)
	}
	l.mu.Lock()
	l.restored, l.written = true, text
	if lease.Spec.RenewTime != nil {
		l.wroteAt = lease.Spec.RenewTime.Time
	}
	l.mu.Unlock()
	if derr != nil {
		return fmt.Errorf("own load lease unreadable, overwriting it: %w", derr)
	}
	return nil
}

// write stores text in this replica's Lease (deleted when text is empty).
func (l *LoadShare) write(ctx context.Context, text string, now time.Time) error {
	lease := &coordinationv1.Lease{}
	key := client.ObjectKey{Namespace: l.Namespace, Name: l.leaseName()}
	err := l.Client.Get(ctx, key, lease)
	create := apierrors.IsNotFound(err)
	switch {
	case err != nil && !create:
		return fmt.Errorf("read own load lease: %w", err)
	case text == "" && create:
		return nil
	case text == "":
		return client.IgnoreNotFound(l.Client.Delete(ctx, lease))
	}
	lease.Name, lease.Namespace = key.Name, key.Namespace
	if lease.Labels == nil {
		lease.Labels = map[string]string{}
	}
	lease.Labels[LabelXDSLoad] = "true"
	lease.Labels["app.kubernetes.io/managed-by"] = "serin"
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[AnnotationXDSLoad] = text
	lease.Spec.HolderIdentity = ptr.To(l.Identity)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(l.compaction().Retention / time.Second))
	lease.Spec.RenewTime = &metav1.MicroTime{Time: now}
	if create {
		err = l.Client.Create(ctx, lease)
	} else {
		err = l.Client.Update(ctx, lease)
	}
	if err != nil {
		return fmt.Errorf("write own load lease: %w", err)
	}
	return nil
}

// sweep deletes other replicas' Leases whose counts are all past the
// retention.
func (l *LoadShare) sweep(ctx context.Context, now time.Time) error {
	leases, err := l.others(ctx)
	if err != nil {
		return err
	}
	for i := range leases {
		le := &leases[i]
		if le.Spec.RenewTime != nil && now.Sub(le.Spec.RenewTime.Time) <= l.compaction().Retention {
			continue
		}
		if err := client.IgnoreNotFound(l.Client.Delete(ctx, le)); err != nil {
			return fmt.Errorf("delete expired load lease %s: %w", le.Name, err)
		}
	}
	return nil
}

func (l *LoadShare) others(ctx context.Context) ([]coordinationv1.Lease, error) {
	var list coordinationv1.LeaseList
	if err := l.Client.List(ctx, &list, client.InNamespace(l.Namespace), client.MatchingLabels{LabelXDSLoad: "true"}); err != nil {
		return nil, fmt.Errorf("list load leases: %w", err)
	}
	out := list.Items[:0]
	for _, le := range list.Items {
		if le.Name != l.leaseName() {
			out = append(out, le)
		}
	}
	return out, nil
}

// LoadReports is this replica's counts for cluster in [since, until) plus
// those every other replica shared (live or not). A replica that has just
// restarted reads its own Lease back first, so that a release's counts
// never dip.
func (l *LoadShare) LoadReports(cluster string, since, until time.Time) map[v1alpha1.Track]v1alpha1.LoadCounts {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.restore(ctx) // on failure the next Publish tries again
	out := l.Local.LoadReports(cluster, since, until)
	for _, snap := range l.peerSnapshots(ctx) {
		for track, c := range snap.Counts(cluster, since, until) {
			sum := out[track]
			sum.Add(c)
			out[track] = sum
		}
	}
	return out
}

// peerSnapshots decodes the other replicas' Leases, each once per
// version. An unreadable Lease counts as empty.
func (l *LoadShare) peerSnapshots(ctx context.Context) []server.LoadSnapshot {
	leases, err := l.others(ctx)
	if err != nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	next := make(map[string]peerLoads, len(leases))
	out := make([]server.LoadSnapshot, 0, len(leases))
	for _, le := range leases {
		p, ok := l.peers[le.Name]
		if !ok || p.version != le.ResourceVersion {
			snap, err := server.DecodeLoads(le.Annotations[AnnotationXDSLoad])
			if err != nil {
				snap = server.LoadSnapshot{}
			}
			p = peerLoads{version: le.ResourceVersion, snap: snap}
		}
		next[le.Name] = p
		out = append(out, p.snap)
	}
	l.peers = next
	return out
}
