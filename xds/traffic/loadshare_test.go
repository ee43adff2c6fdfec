package traffic

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/scheme"
	"github.com/serin-dev/serin/xds/server"
)

// memLoads is a replica's load store: a snapshot it adds reports to.
type memLoads struct {
	mu   sync.Mutex
	snap server.LoadSnapshot
	gen  uint64
}

func (m *memLoads) report(cluster string, sec int64, stable, canary uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap == nil {
		m.snap = server.LoadSnapshot{}
	}
	m.gen++
	m.snap[cluster] = append(m.snap[cluster], server.LoadBucket{Start: sec, Width: 1,
		Stable: v1alpha1.LoadCounts{Success: stable}, Canary: v1alpha1.LoadCounts{Success: canary}})
}

func (m *memLoads) LoadReports(cluster string, since, until time.Time) map[v1alpha1.Track]v1alpha1.LoadCounts {
	snap, _ := m.LoadSnapshot()
	return snap.Counts(cluster, since, until)
}

func (m *memLoads) LoadSnapshot() (server.LoadSnapshot, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := server.LoadSnapshot{}
	for k, v := range m.snap {
		out[k] = append([]server.LoadBucket(nil), v...)
	}
	return out, m.gen
}

func (m *memLoads) SeedLoads(s server.LoadSnapshot) {
	for name, bs := range s {
		for _, b := range bs {
			m.report(name, b.Start, b.Stable.Success, b.Canary.Success)
		}
	}
}

// TestLoadShareAcrossReplicasAndRestarts: the leader counts what every
// replica received, a replica writes only when its counts changed, a
// restarted replica keeps what it had shared, and a replica gone for good
// still counts until its counts are past the retention.
func TestLoadShareAcrossReplicasAndRestarts(t *testing.T) {
	ctx := context.Background()
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	var writes int
	cl := fake.NewClientBuilder().WithScheme(s).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			writes++
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			writes++
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	replica := func(name string, local *memLoads) *LoadShare {
		return &LoadShare{Client: cl, Namespace: "serin-system", Identity: name, Local: local}
	}
	const cluster = "serin/test/podinfo/9999"
	now := time.Unix(1_800_000_000, 0)
	leaderLoads, followerLoads := &memLoads{}, &memLoads{}
	leader, follower := replica("serin-a", leaderLoads), replica("serin-b", followerLoads)
	leaderLoads.report(cluster, now.Unix(), 10, 1)
	followerLoads.report(cluster, now.Unix(), 20, 2)
	followerLoads.report(cluster, now.Unix()+1, 30, 3)

	total := func(l *LoadShare) v1alpha1.LoadCounts {
		var sum v1alpha1.LoadCounts
		for _, c := range l.LoadReports(cluster, now.Add(-time.Minute), now.Add(time.Minute)) {
			sum.Add(c)
		}
		return sum
	}
	if got := total(leader); got.Success != 11 {
		t.Fatalf("before the follower shared: %+v", got)
	}
	for _, l := range []*LoadShare{leader, follower} {
		if err := l.Publish(ctx, now.Add(2*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if got := total(leader); got.Success != 66 {
		t.Fatalf("leader counts %d requests, want 66 (11 its own, 55 the follower's)", got.Success)
	}
	if writes != 2 {
		t.Fatalf("%d writes for two replicas' first counts", writes)
	}
	// Unchanged counts are not written again.
	for range 3 {
		if err := follower.Publish(ctx, now.Add(3*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if writes != 2 {
		t.Fatalf("%d writes: unchanged counts were written again", writes)
	}

	// The follower restarts with an empty store: it reads its counts back
	// and adds the new ones.
	restarted := &memLoads{}
	follower = replica("serin-b", restarted)
	restarted.report(cluster, now.Unix()+4, 7, 0)
	if err := follower.Publish(ctx, now.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := total(leader); got.Success != 73 {
		t.Fatalf("after the follower's restart the leader counts %d requests, want 73", got.Success)
	}
	// The leader restarts: its own counts come back from its Lease, even
	// when analysis asks before the first write.
	leader = replica("serin-a", &memLoads{})
	if got := total(leader); got.Success != 73 {
		t.Fatalf("after the leader's restart it counts %d requests, want 73", got.Success)
	}
	if err := leader.Publish(ctx, now.Add(6*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := total(leader); got.Success != 73 {
		t.Fatalf("after the leader's restart and first write it counts %d requests, want 73", got.Success)
	}

	// The follower is gone for good: its Lease still counts, until the
	// retention passed; then the leader deletes it.
	if err := leader.Publish(ctx, now.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := total(leader); got.Success != 73 {
		t.Fatalf("a gone replica's counts vanished: %d", got.Success)
	}
	if err := leader.Publish(ctx, now.Add(20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	var list coordinationv1.LeaseList
	if err := cl.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		names := []string{}
		for _, l := range list.Items {
			names = append(names, l.Name)
		}
		t.Fatalf("leases past the retention remain: %v", names)
	}
}

// TestLoadShareWriteRate measures a replica's Lease writes and size while
// n clusters receive reports every second for 200 s, then while
// none do until their counts are past the retention: at most one write a
// second with traffic, none idle but the final delete.
func TestLoadShareWriteRate(t *testing.T) {
	ctx := context.Background()
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 20} {
		var writes, largest int
		cl := fake.NewClientBuilder().WithScheme(s).WithInterceptorFuncs(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				writes++
				largest = max(largest, len(obj.GetAnnotations()[AnnotationXDSLoad]))
				return c.Create(ctx, obj, opts...)
			},
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				writes++
				largest = max(largest, len(obj.GetAnnotations()[AnnotationXDSLoad]))
				return c.Update(ctx, obj, opts...)
			},
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				writes++
				return c.Delete(ctx, obj, opts...)
			},
		}).Build()
		local := &memLoads{}
		l := &LoadShare{Client: cl, Namespace: "serin-system", Identity: "serin-a", Local: local}
		start := time.Unix(1_800_000_000, 0)
		const busy, idle = 200, 1000
		for sec := range int64(busy + idle) {
			if sec < busy {
				for c := range n {
					local.report(fmt.Sprintf("serin/team-%03d/service/8080", c), start.Unix()+sec, 45, 5)
				}
			}
			if err := l.Publish(ctx, start.Add(time.Duration(sec)*time.Second+500*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			if sec == busy-1 {
				t.Logf("%3d clusters: %d writes in %d s of traffic (%.2f/s), largest annotation %d bytes", n, writes, busy, float64(writes)/busy, largest)
				if writes > busy {
					t.Errorf("more than one write a second")
				}
				writes = 0
			}
		}
		t.Logf("%3d clusters: %d writes in %d idle seconds", n, writes, idle)
		if writes != 1 {
			t.Errorf("%d writes while idle, want 1 (the delete once the counts expired)", writes)
		}
		if largest > server.DefaultLoadBudget {
			t.Errorf("annotation of %d bytes, over the budget", largest)
		}
	}
}
