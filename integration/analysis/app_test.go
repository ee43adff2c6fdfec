package analysis

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/harness"
)

// appName is the demo app's Deployment, Service and Canary name.
const appName = "podinfo"

// app is one namespace's podinfo with its Canary.
type app struct {
	e  *env
	t  *testing.T
	ns string
	// replicas of the stable Deployment.
	replicas int
	// rev is the template hash of the last deployed version: waitPhase
	// only accepts a status about it.
	rev string
	// podAnnotations, a YAML flow map, annotate podinfo's pod template.
	podAnnotations string
}

// newApp creates a namespace, applies the Canary (spec given as YAML,
// indented under spec:) and podinfo at version 1.0.0, and waits for the
// Canary to be Initialized.
func (e *env) newApp(t *testing.T, canarySpec string) *app {
	t.Helper()
	a := &app{e: e, t: t, ns: e.c.Namespace(t), replicas: 2}
	a.applyCanary(canarySpec)
	a.deploy("1.0.0", nil)
	a.waitPhase(v1alpha1.PhaseInitialized, time.Minute)
	return a
}

// applyCanary applies the Canary with the given spec body.
func (a *app) applyCanary(spec string) {
	a.t.Helper()
	y := fmt.Sprintf("apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: %s}\n  service: {port: 9999, appProtocol: grpc}\n%s",
		appName, a.ns, appName, indent(strings.TrimSpace(spec), "  "))
	a.kubectl(y, "apply", "-f", "-")
}

// deploy applies podinfo at version with extra env (ERROR_RATE, ...).
func (a *app) deploy(version string, envs map[string]string) {
	a.t.Helper()
	var extra string
	keys := make([]string, 0, len(envs))
	for k := range envs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		extra += fmt.Sprintf(", {name: %s, value: %q}", k, envs[k])
	}
	manifest := harness.PodinfoDeployment(a.ns, version, a.replicas, extra)
	if a.podAnnotations != "" {
		const labels = "\n      labels: {app: podinfo}\n"
		if !strings.Contains(manifest, labels) {
			a.t.Fatalf("no pod template labels to annotate beside in\n%s", manifest)
		}
		manifest = strings.Replace(manifest, labels, labels+"      annotations: "+a.podAnnotations+"\n", 1)
	}
	a.kubectl(manifest, "apply", "-f", "-")
	var d appsv1.Deployment
	if err := a.e.cl.Get(context.Background(), types.NamespacedName{Namespace: a.ns, Name: appName}, &d); err != nil {
		a.t.Fatal(err)
	}
	a.rev = v1alpha1.TemplateHash(&d.Spec.Template)
}

func (a *app) kubectl(stdin string, args ...string) string {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := a.e.c.Kubectl(ctx, stdin, args...)
	if err != nil {
		a.t.Fatal(err)
	}
	return out
}

// apply applies a manifest in the app's namespace.
func (a *app) apply(manifest string) {
	a.t.Helper()
	a.kubectl(manifest, "apply", "-n", a.ns, "-f", "-")
}

// canary reads the Canary.
func (a *app) canary() (*v1alpha1.Canary, error) {
	var c v1alpha1.Canary
	err := a.e.cl.Get(context.Background(), types.NamespacedName{Namespace: a.ns, Name: appName}, &c)
	return &c, err
}

// xdsClient is a grpc-go xDS channel to podinfo.<ns>:9999 through serin.
func (a *app) target() string { return fmt.Sprintf("%s.%s:9999", appName, a.ns) }

// startLoad sends rps requests a second through a new grpc-go xDS client.
func (a *app) startLoad(rps int) *load {
	a.t.Helper()
	conn := harness.XDSClient(a.t, a.e.serin.XDSAddress(), a.ns+"-client", a.target())
	return startLoad(a.t, conn, rps)
}

// watcher records every change of a Canary's status, polling.
type watcher struct {
	a    *app
	mu   sync.Mutex
	seen []snapshot
	stop chan struct{}
	done chan struct{}
}

// snapshot is one observed status.
type snapshot struct {
	at     time.Time
	status v1alpha1.CanaryStatus
}

func (s snapshot) String() string {
	st := s.status
	fast := ""
	if st.LastFastCheckTime != nil {
		fast = " lastFastCheck=" + st.LastFastCheckTime.Format("15:04:05")
	}
	return fmt.Sprintf("%s %s weight=%d failedChecks=%d iterations=%d%s message=%q verdict=%q",
		s.at.Format("15:04:05.000"), st.Phase, st.CanaryWeight, st.FailedChecks, st.Iterations, fast, st.Message, st.LastVerdict)
}

func (s snapshot) key() string {
	st := s.status
	return fmt.Sprintf("%s %d %d %d %s %s %v", st.Phase, st.CanaryWeight, st.FailedChecks, st.Iterations, st.Message, st.LastVerdict, st.LastFastCheckTime)
}

// watch polls the Canary every 100ms until the test ends; its log is
// printed when the test fails.
func (a *app) watch() *watcher {
	w := &watcher{a: a, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		last := ""
		for {
			if c, err := a.canary(); err == nil {
				s := snapshot{at: time.Now(), status: c.Status}
				if k := s.key(); k != last {
					last = k
					w.mu.Lock()
					w.seen = append(w.seen, s)
					w.mu.Unlock()
				}
			}
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	a.t.Cleanup(func() {
		close(w.stop)
		<-w.done
		if a.t.Failed() {
			a.t.Logf("canary %s/%s history:\n%s", a.ns, appName, w.history())
			a.t.Logf("events:\n%s", strings.Join(a.events(), "\n"))
		}
	})
	return w
}

func (w *watcher) history() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, s := range w.seen {
		b.WriteString(s.String() + "\n")
	}
	return b.String()
}

// since returns the snapshots observed at or after t.
func (w *watcher) since(t time.Time) []snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []snapshot
	for _, s := range w.seen {
		if !s.at.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

// waitPhase polls the Canary until it reaches phase and returns its status.
// Reaching Failed while waiting for another phase fails the test at once
// (and the other way round).
func (a *app) waitPhase(phase v1alpha1.CanaryPhase, timeout time.Duration) v1alpha1.CanaryStatus {
	a.t.Helper()
	// A status is about the last deployed revision when it releases it,
	// promoted it or rolled it back; until serin sees the new revision the
	// status still tells of the previous release.
	succeeded := func(st v1alpha1.CanaryStatus) bool {
		return st.Phase == v1alpha1.PhaseSucceeded && st.StableRevision == a.rev
	}
	failed := func(st v1alpha1.CanaryStatus) bool {
		return st.Phase == v1alpha1.PhaseFailed && slices.Contains(st.FailedRevisions, a.rev)
	}
	st, err := a.waitFor(timeout, func(st v1alpha1.CanaryStatus) (bool, error) {
		switch {
		case phase == v1alpha1.PhaseSucceeded && failed(st):
			return false, fmt.Errorf("release failed: %s (last verdict %s)", st.Message, st.LastVerdict)
		case phase == v1alpha1.PhaseFailed && succeeded(st):
			return false, fmt.Errorf("release succeeded, want a rollback (last verdict %s)", st.LastVerdict)
		case phase == v1alpha1.PhaseSucceeded:
			return succeeded(st), nil
		case phase == v1alpha1.PhaseFailed:
			return failed(st), nil
		case phase == v1alpha1.PhaseInitialized:
			return st.Phase == phase, nil
		}
		return st.Phase == phase && st.CanaryRevision == a.rev, nil
	})
	if err != nil {
		a.t.Fatalf("waiting for phase %s: %v", phase, err)
	}
	return st
}

// waitFor polls the Canary's status until ok says so.
func (a *app) waitFor(timeout time.Duration, ok func(v1alpha1.CanaryStatus) (bool, error)) (v1alpha1.CanaryStatus, error) {
	deadline := time.Now().Add(timeout)
	var last v1alpha1.CanaryStatus
	for {
		c, err := a.canary()
		if err == nil {
			last = c.Status
			done, err := ok(c.Status)
			if err != nil {
				return last, err
			}
			if done {
				return last, nil
			}
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("timed out after %s; last status: phase %s weight %d failedChecks %d message %q verdict %q",
				timeout, last.Phase, last.CanaryWeight, last.FailedChecks, last.Message, last.LastVerdict)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// events are the notes of the Canary's events, oldest first.
func (a *app) events() []string {
	cs, err := a.e.c.Clientset()
	if err != nil {
		return []string{err.Error()}
	}
	list, err := cs.EventsV1().Events(a.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return []string{err.Error()}
	}
	items := slices.DeleteFunc(list.Items, func(ev eventsv1.Event) bool { return ev.Regarding.Kind != "Canary" })
	sort.SliceStable(items, func(i, j int) bool { return eventTime(items[i]).Before(eventTime(items[j])) })
	out := make([]string, 0, len(items))
	for _, ev := range items {
		out = append(out, fmt.Sprintf("%s %s %s", eventTime(ev).Format("15:04:05.000"), ev.Type, ev.Note))
	}
	return out
}

func eventTime(ev eventsv1.Event) time.Time {
	if !ev.EventTime.IsZero() {
		return ev.EventTime.Time
	}
	return ev.CreationTimestamp.Time
}

// hasEvent reports whether an event note contains every part. serin
// writes events asynchronously, so it waits a little for one to appear.
func (a *app) hasEvent(parts ...string) bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		for _, ev := range a.events() {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(ev, p)
			}
			if all {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}
