package traffic

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/serin-dev/serin/integration/podsim"
)

// testUnreadyPod turns one stable pod unready through the API (as a
// failing readiness probe would) while the pod keeps listening, and checks
// that grpc-go stops sending it calls: serin publishes it unhealthy.
func testUnreadyPod(t *testing.T, e *env) {
	r := newRelease(t, e, grpcService, `    interval: 1s
    stepWeights: [50]
`)
	conn := r.client("unready")
	before := send(conn, 1500)
	if len(before.Pods) != 3 || before.Errors > 0 {
		t.Fatalf("all three pods must take calls first: %v %v", before, before.Pods)
	}
	pods, err := e.cs.CoreV1().Pods(r.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=podinfo"})
	if err != nil || len(pods.Items) != 3 {
		t.Fatalf("pods: %v (%d)", err, len(pods.Items))
	}
	names := make([]string, 0, 3)
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	victim := names[0]

	patch := []byte(`{"status":{"conditions":[{"type":"Ready","status":"False","reason":"ReadinessProbeFailed"},{"type":"ContainersReady","status":"False","reason":"ReadinessProbeFailed"}]}}`)
	p, err := e.cs.CoreV1().Pods(r.ns).Patch(context.Background(), victim, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		t.Fatal(err)
	}
	unreadyAt := time.Now()
	// podsim stops serving unready pods; a real unready pod usually still
	// listens, so serve it again ourselves: only serin's health status can
	// keep calls away from it now.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.sim.WaitFor(ctx, func(addrs []podsim.PodAddr) bool {
		return !slices.ContainsFunc(addrs, func(a podsim.PodAddr) bool { return a.Name == victim })
	}); err != nil {
		t.Fatal(err)
	}
	srv, err := podsim.NewPodServer(p, podsim.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var bound error
	for i := 0; i < 50; i++ { // the old listener may take a moment to close
		if bound = srv.Start(context.Background()); bound == nil || !strings.Contains(bound.Error(), "address already in use") {
			break
		}
		srv, _ = podsim.NewPodServer(p, podsim.ServerOptions{})
		time.Sleep(100 * time.Millisecond)
	}
	if bound != nil {
		t.Fatal(bound)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
	})
	assertPodAnswers(t, p, victim)

	// Give serin and grpc-go the time a reconnect would take, then measure.
	time.Sleep(2500 * time.Millisecond)
	after := send(conn, 2000)
	t.Logf("FIGURE unready_pod_calls_after=%d of=%d (%s after the pod turned unready)", after.Pods[victim], after.Total, time.Since(unreadyAt).Round(time.Millisecond))
	t.Logf("before: %v %v; after: %v %v", before, before.Pods, after, after.Pods)
	if after.Pods[victim] != 0 {
		t.Errorf("the unready pod %s still took %d of %d calls", victim, after.Pods[victim], after.Total)
	}
	if after.Errors > 0 || len(after.Pods) != 2 {
		t.Errorf("the two ready pods must take every call: %v %v", after, after.Pods)
	}
}

// assertPodAnswers checks that the pod's own gRPC port answers directly.
func assertPodAnswers(t *testing.T, p *corev1.Pod, name string) {
	t.Helper()
	conn, err := grpc.NewClient(p.Status.PodIP+":9999", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tl := send(conn, 10)
	if tl.Pods[name] != 10 {
		t.Fatalf("the unready pod must still answer when called directly: %v", tl)
	}
}
