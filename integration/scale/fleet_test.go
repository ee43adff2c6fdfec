package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

// interval is every release's analysis interval; each release has five
// steps (weights 20, 40, 60, 80, 100).
const interval = 5 * time.Second

// app is one opted-in Deployment and its Canary.
type app struct {
	Index   int
	NS      string
	Name    string
	Failing bool
	obs     *observer
	// conn is the grpc-go xDS client of an app designed to fail.
	conn *grpc.ClientConn

	// Set when its release starts.
	applied time.Time
	rev     string
	// unheld is set when the change was admitted without serin's hold.
	unheld bool
}

func (a *app) key() string { return a.NS + "/" + a.Name }

// fleet is the whole scenario's cluster state.
type fleet struct {
	t     *testing.T
	sz    size
	c     *cluster.Cluster
	cs    kubernetes.Interface
	cl    client.WithWatch
	s     *harness.Serin
	apps  []*app
	watch *canaryWatch
	// copies records when the canary copies became ready.
	copies *copyWatch
}

// newApps lays the apps out: the ones designed to fail in failNS, the
// others round-robin over namespaces.
func newApps(sz size, namespaces []string, failNS string) []*app {
	apps := make([]*app, sz.Apps)
	for i := range apps {
		a := &app{Index: i, Name: fmt.Sprintf("app-%04d", i), Failing: sz.failing(i)}
		a.NS = namespaces[i%len(namespaces)]
		if a.Failing {
			a.NS = failNS
		}
		apps[i] = a
	}
	return apps
}

// canaryFor is an app's Canary: gRPC on 9999, interval 5 s, five steps of
// 20. Releases designed to fail are judged on their load reports (99 %
// success); the others have no checks, so they measure the engine and the
// data plane alone.
func canaryFor(a *app) *v1alpha1.Canary {
	an := v1alpha1.CanaryAnalysis{Interval: interval.String(), Threshold: 1, StepWeight: 20, MaxWeight: 100}
	spec := v1alpha1.CanarySpec{
		TargetRef:               v1alpha1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: a.Name},
		ProgressDeadlineSeconds: ptr.To[int32](300),
		Service:                 v1alpha1.CanaryService{Port: 9999, AppProtocol: "grpc"},
		Analysis:                &an,
	}
	if a.Failing {
		minRate := 99.0
		spec.LoadReports = &v1alpha1.LoadReports{Enabled: true}
		an.Metrics = []v1alpha1.CanaryMetric{{Name: v1alpha1.MetricRequestSuccessRate, ThresholdRange: &v1alpha1.CanaryThresholdRange{Min: &minRate}}}
	}
	return &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: a.Name, Namespace: a.NS}, Spec: spec}
}

// container is the app container of a version; errorRate > 0 makes podsim
// fail that fraction of calls.
func container(version string, errorRate string) corev1.Container {
	env := []corev1.EnvVar{{Name: "VERSION", Value: version}}
	if errorRate != "" {
		env = append(env, corev1.EnvVar{Name: "ERROR_RATE", Value: errorRate})
	}
	return corev1.Container{Name: "app", Image: "ghcr.io/stefanprodan/podinfo:" + version, Env: env,
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}, {Name: "grpc", ContainerPort: 9999}}}
}

func deploymentFor(a *app, replicas int) *appsv1.Deployment {
	labels := map[string]string{"app": a.Name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: a.Name, Namespace: a.NS},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{container("1.0.0", "")}},
			},
		},
	}
}

// create makes every app's Canary, then its Deployment, with a few
// requests in flight.
func (f *fleet) create(ctx context.Context) error {
	return parallel(8, f.apps, func(a *app) error {
		if err := f.cl.Create(ctx, canaryFor(a)); err != nil {
			return fmt.Errorf("create canary %s: %w", a.key(), err)
		}
		if _, err := f.cs.AppsV1().Deployments(a.NS).Create(ctx, deploymentFor(a, f.sz.Replicas), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create deployment %s: %w", a.key(), err)
		}
		return nil
	})
}

// release starts an app's release: version 2.0.0 of its template (with
// half its calls failing when it is designed to fail). It records when the
// request was sent and the revision serin holds.
func (f *fleet) release(ctx context.Context, a *app) error {
	errorRate := ""
	if a.Failing {
		errorRate = "0.5"
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []corev1.Container{container("2.0.0", errorRate)}}}}})
	if err != nil {
		return err
	}
	a.applied = time.Now()
	d, err := f.cs.AppsV1().Deployments(a.NS).Patch(ctx, a.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("release %s: %w", a.key(), err)
	}
	a.rev = d.Annotations[v1alpha1.AnnotationCandidateRevision]
	if a.rev == "" {
		// The API server let the change through without serin's hold
		// (the webhook answered after its timeout and fails open): no
		// release to follow, and the scenario counts it as not correct.
		a.unheld = true
		return nil
	}
	if a.conn != nil {
		go f.load(ctx, a)
	}
	return nil
}

// waitAll polls until done holds for every app, or fails the test after
// timeout naming a few that are not; the scenario goes on, so that its
// figures are still printed.
func (f *fleet) waitAll(apps []*app, timeout time.Duration, what string, done func(*app) bool) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for _, a := range apps {
			if !done(a) {
				missing = append(missing, a.key())
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, k := range missing[:min(5, len(missing))] {
				f.t.Logf("%s: %+v", k, tail(f.watch.of(k), 4))
			}
			f.t.Errorf("%s: %d of %d not there after %s (e.g. %v)", what, len(missing), len(apps), timeout, missing[:min(5, len(missing))])
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func tail[T any](s []T, n int) []T { return s[max(0, len(s)-n):] }

// phaseIs is a waitAll condition: the app's Canary is in one of phases.
func (f *fleet) phaseIs(phases ...v1alpha1.CanaryPhase) func(*app) bool {
	return func(a *app) bool {
		st, ok := f.watch.last(a.key())
		if !ok {
			return false
		}
		for _, p := range phases {
			if st.Phase == p {
				return true
			}
		}
		return false
	}
}

// parallel runs fn over items with n at a time and returns the first error.
func parallel[T any](n int, items []T, fn func(T) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	slots := make(chan struct{}, n)
	for _, it := range items {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := fn(it); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}
