package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

// env is one test's namespace on the shared cluster, with its own serin.
type env struct {
	t   *testing.T
	c   *cluster.Cluster
	ns  string
	s   *harness.Serin
	cs  kubernetes.Interface
	cl  client.WithWatch
	ctx context.Context
}

// newEnv makes a namespace whose pods answer (podsim) and installs serin.
// At the end the namespace's Canaries are deleted while serin still runs,
// so no finalizer is left behind.
func newEnv(t *testing.T, timeout time.Duration, opts harness.Options) *env {
	t.Helper()
	return newEnvWith(t, timeout, harness.Install(t, cluster.Get(t), opts))
}

// newEnvWith makes another namespace served by an installed serin.
func newEnvWith(t *testing.T, timeout time.Duration, s *harness.Serin) *env {
	t.Helper()
	return newEnvIn(t, timeout, s, cluster.Get(t).Namespace(t))
}

// newEnvIn is the env of namespace ns, served by s.
func newEnvIn(t *testing.T, timeout time.Duration, s *harness.Serin, ns string) *env {
	t.Helper()
	c := cluster.Get(t)
	harness.RunPodsim(t, c, ns)
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := harness.Client(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	e := &env{t: t, c: c, ns: ns, s: s, cs: cs, cl: cl, ctx: ctx}
	t.Cleanup(e.deleteCanaries)
	return e
}

func (e *env) deleteCanaries() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The Deployments first: serin would adopt an annotated one again.
	_ = e.cl.DeleteAllOf(ctx, &appsv1.Deployment{}, client.InNamespace(e.ns))
	_ = e.cl.DeleteAllOf(ctx, &v1alpha1.Canary{}, client.InNamespace(e.ns))
	for ctx.Err() == nil {
		var list v1alpha1.CanaryList
		if err := e.cl.List(ctx, &list, client.InNamespace(e.ns)); err != nil || len(list.Items) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// --- manifests ---

// app describes the podinfo Deployment of a test.
type app struct {
	Version     string
	Replicas    int32
	Annotations map[string]string
	Env         map[string]string
	// NoOptIn leaves out the serin.dev/canary annotation (an explicit
	// Canary opts the Deployment in).
	NoOptIn bool
	// EnvConfigMap is a ConfigMap read with envFrom; FilesConfigMap one
	// mounted at /etc/podinfo; TokenSecret a Secret whose key TOKEN is
	// the env var TOKEN.
	EnvConfigMap, FilesConfigMap, TokenSecret string
}

func (a app) deployment(ns string) *appsv1.Deployment {
	replicas := a.Replicas
	if replicas == 0 {
		replicas = 3
	}
	ann := map[string]string{}
	if !a.NoOptIn {
		ann[v1alpha1.AnnotationCanary] = "enabled"
	}
	for k, v := range a.Annotations {
		ann[k] = v
	}
	env := []corev1.EnvVar{{Name: "VERSION", Value: a.Version}}
	for _, k := range sortedKeys(a.Env) {
		env = append(env, corev1.EnvVar{Name: k, Value: a.Env[k]})
	}
	labels := map[string]string{"app": "podinfo"}
	var envFrom []corev1.EnvFromSource
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	if a.EnvConfigMap != "" {
		envFrom = append(envFrom, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: a.EnvConfigMap}}})
	}
	if a.TokenSecret != "" {
		env = append(env, corev1.EnvVar{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: a.TokenSecret}, Key: "TOKEN"}}})
	}
	if a.FilesConfigMap != "" {
		volumes = append(volumes, corev1.Volume{Name: "files", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: a.FilesConfigMap}}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "files", MountPath: "/etc/podinfo"})
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns, Annotations: ann},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "ghcr.io/stefanprodan/podinfo:" + a.Version, Env: env, EnvFrom: envFrom, VolumeMounts: mounts,
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}, {Name: "grpc", ContainerPort: 9999}},
				}}, Volumes: volumes},
			},
		},
	}
}

// canary is an explicit Canary for podinfo: gRPC on 9999, interval 1s.
func canary(ns string, analysis v1alpha1.CanaryAnalysis) *v1alpha1.Canary {
	if analysis.Interval == "" {
		analysis.Interval = "1s"
	}
	if analysis.Threshold == 0 {
		analysis.Threshold = 2
	}
	return &v1alpha1.Canary{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Canary"},
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
		Spec: v1alpha1.CanarySpec{
			TargetRef:               v1alpha1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			ProgressDeadlineSeconds: ptr.To[int32](60),
			Service:                 v1alpha1.CanaryService{Port: 9999, AppProtocol: "grpc"},
			Analysis:                &analysis,
		},
	}
}

// apply runs `kubectl apply -f -` on the objects, in order.
func (e *env) apply(objs ...runtime.Object) string {
	e.t.Helper()
	var docs []string
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			e.t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	out, err := e.c.Kubectl(e.ctx, strings.Join(docs, "---\n"), "apply", "-f", "-")
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) kubectl(args ...string) string {
	e.t.Helper()
	out, err := e.c.Kubectl(e.ctx, "", append(args, "-n", e.ns)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// serin runs the serin CLI against the test's namespace and returns its
// output and exit code.
func (e *env) serin(ctx context.Context, args ...string) (string, int) {
	e.t.Helper()
	bin, err := harness.Binary()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig=" + e.c.Kubeconfig, "-n", e.ns}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	default:
		e.t.Fatalf("serin %v: %v", args, err)
		return "", -1
	}
}

// mustSerin runs a serin CLI command that must succeed.
func (e *env) mustSerin(args ...string) string {
	e.t.Helper()
	out, code := e.serin(e.ctx, args...)
	if code != 0 {
		e.t.Fatalf("serin %v exited %d: %s", args, code, out)
	}
	return out
}

// background runs a command and reports its end.
type background struct {
	done chan struct{}
	end  time.Time
	code int
	out  bytes.Buffer
}

func (e *env) start(name string, args ...string) *background {
	e.t.Helper()
	b := &background{done: make(chan struct{})}
	cmd := exec.CommandContext(e.ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &b.out, &b.out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		b.end = time.Now()
		b.code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			b.code = ee.ExitCode()
		} else if err != nil {
			b.code = -1
		}
		close(b.done)
	}()
	return b
}

func (b *background) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

func (e *env) wait(b *background, what string, d time.Duration) {
	e.t.Helper()
	select {
	case <-b.done:
	case <-time.After(d):
		e.t.Fatalf("%s did not end within %s; output so far: %s", what, d, b.out.String())
	}
}

// --- reading the cluster ---

func (e *env) canaryObj() *v1alpha1.Canary {
	e.t.Helper()
	var c v1alpha1.Canary
	if err := e.cl.Get(e.ctx, types.NamespacedName{Namespace: e.ns, Name: "podinfo"}, &c); err != nil {
		e.t.Fatal(err)
	}
	return &c
}

func (e *env) deploymentObj(name string) *appsv1.Deployment {
	e.t.Helper()
	d, err := e.cs.AppsV1().Deployments(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// pods are the namespace's running pods matching the label selector.
func (e *env) pods(selector string) []corev1.Pod {
	e.t.Helper()
	list, err := e.cs.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func podVersion(p corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		for _, v := range c.Env {
			if v.Name == "VERSION" {
				return v.Value
			}
		}
	}
	return ""
}

// eventually polls cond until it holds or d passes.
func (e *env) eventually(d time.Duration, what string, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		if time.Now().After(deadline) || e.ctx.Err() != nil {
			e.t.Fatalf("%s: not within %s; last: %s", what, d, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// copyGone waits until the canary copy and its pods are gone.
func (e *env) copyGone(d time.Duration) {
	e.t.Helper()
	e.eventually(d, "canary copy deleted", func() (bool, string) {
		if dep := e.deploymentObj("podinfo-canary"); dep != nil {
			return false, "deployment podinfo-canary exists"
		}
		if pods := e.pods("app=podinfo-canary"); len(pods) > 0 {
			return false, fmt.Sprintf("%d canary pods left", len(pods))
		}
		return true, ""
	})
}

// canaryEvents are the Canary's events as `kubectl get events` shows them,
// oldest first (by eventTime, then series).
func (e *env) canaryEvents() []string {
	e.t.Helper()
	out := e.kubectl("get", "events", "--field-selector", "involvedObject.kind=Canary,involvedObject.name=podinfo", "-o", "json")
	var list struct {
		Items []struct {
			Message   string           `json:"message"`
			EventTime metav1.MicroTime `json:"eventTime"`
			Series    *struct {
				Count int `json:"count"`
			} `json:"series"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		e.t.Fatal(err)
	}
	sort.SliceStable(list.Items, func(i, j int) bool { return list.Items[i].EventTime.Before(&list.Items[j].EventTime) })
	var msgs []string
	for _, it := range list.Items {
		m := it.Message
		if it.Series != nil {
			m += fmt.Sprintf(" (series x%d)", it.Series.Count)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// inOrder reports the first of want that does not appear, in order, as a
// prefix of one of got.
func inOrder(got, want []string) (missing string, ok bool) {
	i := 0
	for _, w := range want {
		for i < len(got) && !strings.HasPrefix(got[i], w) {
			i++
		}
		if i == len(got) {
			return w, false
		}
		i++
	}
	return "", true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// --- the Canary's status over time ---

// record is one status of the Canary as the watch delivered it.
type record struct {
	At             time.Time
	RV             string
	Phase          v1alpha1.CanaryPhase
	Weight         int32
	CanaryRevision string
	StableRevision string
	Applied        *metav1.Condition
	Promoted       *metav1.Condition
	Message        string
	Deleted        bool
}

func (r record) String() string {
	s := fmt.Sprintf("%s %s w=%d rev=%s", r.At.Format("15:04:05.000"), r.Phase, r.Weight, r.CanaryRevision)
	if r.Message != "" {
		s += " (" + r.Message + ")"
	}
	return s
}

// appliedWeight reports whether TrafficApplied says the data plane ACKed
// the record's weight.
func (r record) appliedWeight() bool {
	return r.Applied != nil && r.Applied.Status == metav1.ConditionTrue &&
		strings.HasSuffix(r.Applied.Message, fmt.Sprintf("applied weight %d", r.Weight))
}

// watcher records every status of the namespace's Canary podinfo.
type watcher struct {
	mu      sync.Mutex
	history []record
}

func (e *env) watchCanary() *watcher {
	w := &watcher{}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	e.t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		rv := ""
		for ctx.Err() == nil {
			wi, err := e.cl.Watch(ctx, &v1alpha1.CanaryList{}, client.InNamespace(e.ns),
				client.MatchingFields{"metadata.name": "podinfo"}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: false}})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				c, ok := ev.Object.(*v1alpha1.Canary)
				if !ok {
					if ev.Type == watch.Error {
						rv = "" // too old: start over from the current state
					}
					continue
				}
				rv = c.ResourceVersion
				w.add(c, ev.Type == watch.Deleted)
			}
			wi.Stop()
		}
	}()
	return w
}

func (w *watcher) add(c *v1alpha1.Canary, deleted bool) {
	st := c.Status
	r := record{At: time.Now(), RV: c.ResourceVersion, Phase: st.Phase, Weight: st.CanaryWeight,
		CanaryRevision: st.CanaryRevision, StableRevision: st.StableRevision, Message: st.Message, Deleted: deleted,
		Applied:  apimeta.FindStatusCondition(st.Conditions, v1alpha1.ConditionTrafficApplied),
		Promoted: apimeta.FindStatusCondition(st.Conditions, v1alpha1.ConditionPromoted)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.history); n > 0 && w.history[n-1].RV == r.RV && !deleted {
		return
	}
	w.history = append(w.history, r)
}

func (w *watcher) all() []record {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.history)
}

func (w *watcher) last() record {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.history) == 0 {
		return record{}
	}
	return w.history[len(w.history)-1]
}

// since returns the records from index i on.
func (w *watcher) since(i int) []record {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.history[min(i, len(w.history)):])
}

func (w *watcher) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.history)
}

// waitFor waits for a record (from index from on) that satisfies cond and
// returns it with its index.
func (e *env) waitFor(w *watcher, from int, d time.Duration, what string, cond func(record) bool) (record, int) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		recs := w.since(from)
		for i, r := range recs {
			if cond(r) {
				return r, from + i
			}
		}
		if time.Now().After(deadline) || e.ctx.Err() != nil {
			var lines []string
			for _, r := range w.all() {
				lines = append(lines, r.String())
			}
			if len(lines) > 30 {
				lines = lines[len(lines)-30:]
			}
			e.t.Fatalf("%s: not within %s; status history:\n%s", what, d, strings.Join(lines, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func phaseIs(p v1alpha1.CanaryPhase) func(record) bool {
	return func(r record) bool { return r.Phase == p }
}
