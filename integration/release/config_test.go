package release

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/harness"
)

func configMap(ns, name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data}
}

func secret(ns, name string, data map[string]string) *corev1.Secret {
	return &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}
}

// answer is one call's answer as a client saw it: who answered and the
// config content it reported.
type answer struct {
	At                   time.Time
	Workload, Env, Files string
	Failed               bool
}

// configLoad calls the service without pause from 4 goroutines and keeps
// every answer.
type configLoad struct {
	mu      sync.Mutex
	answers []answer
	stop    context.CancelFunc
	done    sync.WaitGroup
}

func startConfigLoad(ctx context.Context, conn *grpc.ClientConn) *configLoad {
	ctx, cancel := context.WithCancel(ctx)
	l := &configLoad{stop: cancel}
	client := testgrpc.NewTestServiceClient(conn)
	for range 4 {
		l.done.Go(func() {
			for ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				var header, trailer metadata.MD
				_, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{}, grpc.Header(&header), grpc.Trailer(&trailer), grpc.WaitForReady(true))
				cancel()
				if ctx.Err() != nil {
					return
				}
				get := func(k string) string {
					if v := header.Get(k); len(v) > 0 {
						return v[0]
					}
					if v := trailer.Get(k); len(v) > 0 {
						return v[0]
					}
					return ""
				}
				a := answer{At: time.Now(), Workload: get("x-workload"), Env: get("x-config-env"), Files: get("x-config-files"), Failed: err != nil}
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	return l
}

func (l *configLoad) since(t time.Time) []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, _ := slices.BinarySearchFunc(l.answers, t, func(a answer, t time.Time) int { return a.At.Compare(t) })
	return slices.Clone(l.answers[i:])
}

func (l *configLoad) close() {
	l.stop()
	l.done.Wait()
}

// content says whether an answer reported this env value and file.
func (a answer) content(env, file string) bool {
	return strings.Contains(a.Env, env) && strings.Contains(a.Files, file)
}

// testConfigRelease: a change to a ConfigMap is a release. A healthy one is
// promoted and every pod ends on the new content; a failing one is rolled
// back, and no stable pod ever answers with its content (env or mounted
// file), during the release or after; the Deployment and the ConfigMap keep
// what the user applied.
func testConfigRelease(t *testing.T, s *harness.Serin) {
	e := newEnvWith(t, 6*time.Minute, s)
	w := e.watchCanary()
	cn := canary(e.ns, v1alpha1.CanaryAnalysis{StepWeight: 20, MaxWeight: 40, Interval: "2s", Threshold: 2,
		Metrics: []v1alpha1.CanaryMetric{{Name: v1alpha1.MetricRequestSuccessRate, ThresholdRange: &v1alpha1.CanaryThresholdRange{Min: ptr.To(99.0)}}}})
	cn.Spec.LoadReports = &v1alpha1.LoadReports{Enabled: true}
	a := app{Version: "6.1.0", EnvConfigMap: "podinfo-env", FilesConfigMap: "podinfo-files", TokenSecret: "podinfo-token", NoOptIn: true}
	applied := a.deployment(e.ns)
	e.apply(configMap(e.ns, "podinfo-env", map[string]string{"CONFIG_VERSION": "c1", "ERROR_RATE": "0"}),
		configMap(e.ns, "podinfo-files", map[string]string{"version": "f1"}),
		secret(e.ns, "podinfo-token", map[string]string{"TOKEN": "t1"}), cn, applied)
	e.waitFor(w, 0, time.Minute, "initialized", phaseIs(v1alpha1.PhaseInitialized))

	// Opting in moved the pods onto snapshots, without a release.
	e.eventually(time.Minute, "pods on snapshots", func() (bool, string) {
		pods := e.pods("app=podinfo")
		n := 0
		for _, p := range pods {
			if p.Labels[v1alpha1.LabelConfigSnapshots] == "true" && p.DeletionTimestamp == nil {
				n++
			}
		}
		return n == 3 && len(pods) == 3, fmt.Sprintf("%d of %d pods on snapshots", n, len(pods))
	})
	checkUserObjects(t, e, applied, "c1")
	if c := e.canaryObj(); len(c.Status.TrackedConfig) != 3 || c.Status.StableConfig == "" {
		t.Fatalf("tracked config %+v, stable %q", c.Status.TrackedConfig, c.Status.StableConfig)
	}
	conn := harness.XDSClient(t, e.s.XDSAddress(), "config", "podinfo."+e.ns+":9999")
	load := startConfigLoad(e.ctx, conn)
	defer load.close()
	time.Sleep(2 * time.Second)
	for _, ans := range load.since(time.Now().Add(-time.Second)) {
		if !ans.content("CONFIG_VERSION=c1", "/etc/podinfo/version=f1") || !strings.Contains(ans.Env, "TOKEN=t1") {
			t.Fatalf("before any change: %+v", ans)
		}
	}

	// A healthy change: promoted; every pod ends on it.
	from := w.len()
	e.apply(configMap(e.ns, "podinfo-env", map[string]string{"CONFIG_VERSION": "c2", "ERROR_RATE": "0"}),
		configMap(e.ns, "podinfo-files", map[string]string{"version": "f2"}))
	e.waitFor(w, from, 30*time.Second, "config release started", phaseIs(v1alpha1.PhaseProgressing))
	e.waitFor(w, from, 2*time.Minute, "config release promoted", phaseIs(v1alpha1.PhaseSucceeded))
	e.eventually(30*time.Second, "every answer on c2", func() (bool, string) {
		got := load.since(time.Now().Add(-2 * time.Second))
		for _, ans := range got {
			if !ans.content("CONFIG_VERSION=c2", "/etc/podinfo/version=f2") || ans.Workload != "podinfo" {
				return false, fmt.Sprintf("%+v", ans)
			}
		}
		return len(got) > 0, "no answers"
	})
	checkUserObjects(t, e, applied, "c2")
	e.eventually(30*time.Second, "snapshots of c1 let go", func() (bool, string) {
		n := len(snapshots(t, e))
		return n == 3, fmt.Sprintf("%d snapshots, want 3", n)
	})

	// A failing change: rolled back; stable pods never serve it.
	failingFrom := time.Now()
	from = w.len()
	e.apply(configMap(e.ns, "podinfo-env", map[string]string{"CONFIG_VERSION": "c3", "ERROR_RATE": "1"}),
		configMap(e.ns, "podinfo-files", map[string]string{"version": "f3"}))
	failed, _ := e.waitFor(w, from, 2*time.Minute, "config release rolled back", phaseIs(v1alpha1.PhaseFailed))
	if !strings.Contains(failed.Message, "the stable pods keep the previous content of configmap/podinfo-env, configmap/podinfo-files") {
		t.Errorf("rollback message %q", failed.Message)
	}
	e.copyGone(30 * time.Second)
	// Long enough for podsim to refresh volumes many times over.
	time.Sleep(8 * time.Second)
	var stable, canaryNew, canaryAll int
	for _, ans := range load.since(failingFrom) {
		switch ans.Workload {
		case "podinfo":
			stable++
			if strings.Contains(ans.Env, "c3") || strings.Contains(ans.Files, "f3") || ans.Failed {
				t.Errorf("a stable pod answered with the new content (or failed): %+v", ans)
			}
		case "podinfo-canary":
			canaryAll++
			if ans.content("CONFIG_VERSION=c3", "/etc/podinfo/version=f3") {
				canaryNew++
			}
		}
	}
	t.Logf("failing config: %d stable answers, none with the new content; %d canary answers, %d of them with it", stable, canaryAll, canaryNew)
	if canaryNew == 0 || stable == 0 {
		t.Errorf("the canary never served the new content (%d of %d) or stable never answered (%d)", canaryNew, canaryAll, stable)
	}
	d := e.deploymentObj("podinfo")
	if !d.Spec.Paused {
		t.Error("the Deployment is not held on the failed config")
	}
	checkUserObjects(t, e, applied, "c3")
	if n := len(snapshots(t, e)); n != 5 {
		t.Errorf("%d snapshots after the rollback, want 5 (stable's 3 and the failed revision's 2)", n)
	}
	e.eventually(10*time.Second, "config events", func() (bool, string) {
		missing, ok := inOrder(e.canaryEvents(), []string{
			"New revision detected! Scaling up podinfo." + e.ns + " (config changed: configmap/podinfo-env, configmap/podinfo-files)",
			"Promotion completed!", "New revision detected! Scaling up podinfo." + e.ns + " (config changed", "Canary failed!"})
		return ok, missing
	})

	// Opting out gives the Deployment back reading its objects, and the
	// snapshots go with the Canary.
	e.kubectl("delete", "canary", "podinfo", "--wait=false")
	e.eventually(time.Minute, "given back", func() (bool, string) {
		d := e.deploymentObj("podinfo")
		_, annotated := d.Spec.Template.Annotations[v1alpha1.AnnotationConfig]
		n := len(snapshots(t, e))
		return !annotated && !d.Spec.Paused && n == 0, fmt.Sprintf("config annotation %v, paused %v, %d snapshots", annotated, d.Spec.Paused, n)
	})
	e.eventually(time.Minute, "pods on the user's objects", func() (bool, string) {
		for _, p := range e.pods("app=podinfo") {
			if p.DeletionTimestamp == nil && (p.Labels[v1alpha1.LabelConfigSnapshots] != "" || p.Spec.Volumes[0].ConfigMap.Name != "podinfo-files") {
				return false, p.Name + " still reads " + p.Spec.Volumes[0].ConfigMap.Name
			}
		}
		return true, ""
	})
}

// checkUserObjects: the Deployment's template references the objects by
// the names the user applied (only the pods read snapshots), carries only
// serin's config annotation beyond what was applied, and the ConfigMap
// holds what was applied.
func checkUserObjects(t *testing.T, e *env, applied *appsv1.Deployment, version string) {
	t.Helper()
	d := e.deploymentObj("podinfo")
	tmpl := d.Spec.Template
	if got, want := v1alpha1.ConfigRefs(&tmpl.Spec), v1alpha1.ConfigRefs(&applied.Spec.Template.Spec); !slices.Equal(got, want) {
		t.Errorf("the Deployment references %v, the user applied %v", got, want)
	}
	for k := range tmpl.Annotations {
		if _, ok := applied.Spec.Template.Annotations[k]; !ok && k != v1alpha1.AnnotationConfig {
			t.Errorf("template annotation %s added", k)
		}
	}
	if tmpl.Annotations[v1alpha1.AnnotationConfig] == "" {
		t.Error("the template carries no config revision")
	}
	c := tmpl.Spec.Containers[0]
	if !equality.Semantic.DeepEqual(c.Env, applied.Spec.Template.Spec.Containers[0].Env) || c.Image != applied.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("container env %+v image %s, applied %+v", c.Env, c.Image, applied.Spec.Template.Spec.Containers[0].Env)
	}
	var cm corev1.ConfigMap
	if err := e.cl.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "podinfo-env"}, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["CONFIG_VERSION"] != version || cm.Immutable != nil || len(cm.OwnerReferences) != 0 {
		t.Errorf("the user's ConfigMap holds %v (immutable %v, owners %v), applied %s", cm.Data, cm.Immutable, cm.OwnerReferences, version)
	}
}

// snapshots lists serin's snapshots in the test's namespace.
func snapshots(t *testing.T, e *env) []string {
	t.Helper()
	var names []string
	var cms corev1.ConfigMapList
	var secs corev1.SecretList
	if err := e.cl.List(e.ctx, &cms, client.InNamespace(e.ns), client.HasLabels{v1alpha1.LabelSnapshotOf}); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.List(e.ctx, &secs, client.InNamespace(e.ns), client.HasLabels{v1alpha1.LabelSnapshotOf}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cms.Items {
		if c.Immutable == nil || !*c.Immutable || len(c.OwnerReferences) != 1 || c.OwnerReferences[0].Kind != "Canary" {
			t.Errorf("snapshot %s: immutable %v owners %+v", c.Name, c.Immutable, c.OwnerReferences)
		}
		names = append(names, "configmap/"+c.Name)
	}
	for _, s := range secs.Items {
		if s.Immutable == nil || !*s.Immutable || len(s.OwnerReferences) != 1 {
			t.Errorf("snapshot %s: immutable %v owners %+v", s.Name, s.Immutable, s.OwnerReferences)
		}
		names = append(names, "secret/"+s.Name)
	}
	return names
}

// TestConfigPodsMadeWhileDown: a pod made while serin (and so its pod
// webhook, which fails open) is down reads the ConfigMap itself; serin,
// back, deletes it so that its ReplicaSet makes it again on snapshots.
// It kills serin, so it installs its own and runs alone.
func TestConfigPodsMadeWhileDown(t *testing.T) {
	e := newEnv(t, 3*time.Minute, harness.Options{})
	w := e.watchCanary()
	a := app{Version: "6.2.0", Replicas: 2, FilesConfigMap: "podinfo-files"}
	e.apply(configMap(e.ns, "podinfo-files", map[string]string{"version": "f1"}), canary(e.ns, v1alpha1.CanaryAnalysis{StepWeight: 50}), a.deployment(e.ns))
	e.waitFor(w, 0, time.Minute, "initialized", phaseIs(v1alpha1.PhaseInitialized))
	onSnapshots := func(want int) func() (bool, string) {
		return func() (bool, string) {
			var on, off []string
			for _, p := range e.pods("app=podinfo") {
				if p.DeletionTimestamp != nil {
					continue
				}
				if p.Labels[v1alpha1.LabelConfigSnapshots] == "true" && p.Spec.Volumes[0].ConfigMap.Name != "podinfo-files" {
					on = append(on, p.Name)
				} else {
					off = append(off, p.Name)
				}
			}
			return len(on) == want && len(off) == 0, fmt.Sprintf("on snapshots %v, reading the ConfigMap %v", on, off)
		}
	}
	e.eventually(time.Minute, "pods on snapshots", onSnapshots(2))

	e.s.Kill()
	e.kubectl("scale", "deployment/podinfo", "--replicas=3")
	var missed string
	e.eventually(time.Minute, "a pod made without the webhook", func() (bool, string) {
		for _, p := range e.pods("app=podinfo") {
			if p.Labels[v1alpha1.LabelConfigSnapshots] == "" && p.Status.Phase == corev1.PodRunning {
				missed = p.Name
				return p.Spec.Volumes[0].ConfigMap.Name == "podinfo-files", "it reads " + p.Spec.Volumes[0].ConfigMap.Name
			}
		}
		return false, "none yet"
	})
	if err := e.s.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.eventually(time.Minute, "the missed pod made again on snapshots", onSnapshots(3))
	for _, p := range e.pods("app=podinfo") {
		if p.Name == missed {
			t.Errorf("pod %s is still there", missed)
		}
	}
	e.eventually(10*time.Second, "repair event", func() (bool, string) {
		for _, ev := range e.canaryEvents() {
			if strings.Contains(ev, "Pod "+missed+" was created without serin's pod webhook") {
				return true, ""
			}
		}
		return false, strings.Join(e.canaryEvents(), "\n")
	})
}
