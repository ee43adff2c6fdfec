package analysis

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/harness"
)

// The TrafficSplit serin writes for provider linkerd, as Linkerd's SMI
// extension reads it: split.smi-spec.io/v1alpha2, named after the Service.
var trafficSplitGVK = schema.GroupVersionKind{Group: "split.smi-spec.io", Version: "v1alpha2", Kind: "TrafficSplit"}

// split is a TrafficSplit's weights by backend Service.
type split struct {
	canary, primary int64
}

func (s split) String() string { return fmt.Sprintf("canary %d / primary %d", s.canary, s.primary) }

// trafficSplit reads the TrafficSplit podinfo and checks its shape: the
// apex Service split between podinfo-canary and podinfo-primary, owned by
// the Canary.
func (a *app) trafficSplit() (split, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(trafficSplitGVK)
	if err := a.e.cl.Get(context.Background(), types.NamespacedName{Namespace: a.ns, Name: appName}, u); err != nil {
		return split{}, err
	}
	if svc, _, _ := unstructured.NestedString(u.Object, "spec", "service"); svc != appName {
		return split{}, fmt.Errorf("TrafficSplit splits service %q, want %q", svc, appName)
	}
	if own := u.GetOwnerReferences(); len(own) != 1 || own[0].Kind != "Canary" || own[0].Name != appName {
		return split{}, fmt.Errorf("TrafficSplit owners %+v, want the Canary", own)
	}
	backends, _, _ := unstructured.NestedSlice(u.Object, "spec", "backends")
	var s split
	seen := map[string]bool{}
	for _, b := range backends {
		m, _ := b.(map[string]any)
		name, _ := m["service"].(string)
		weight, ok := m["weight"].(int64)
		if !ok || seen[name] {
			return split{}, fmt.Errorf("TrafficSplit backends %v: want one integer weight per Service", backends)
		}
		seen[name] = true
		switch name {
		case v1alpha1.CanaryServiceName(appName):
			s.canary = weight
		case v1alpha1.PrimaryServiceName(appName):
			s.primary = weight
		default:
			return split{}, fmt.Errorf("TrafficSplit backend %q is neither %s nor %s", name, v1alpha1.CanaryServiceName(appName), v1alpha1.PrimaryServiceName(appName))
		}
	}
	if len(seen) != 2 {
		return split{}, fmt.Errorf("TrafficSplit backends %v: want the canary and the primary", backends)
	}
	return s, nil
}

// waitSplit polls the TrafficSplit until it carries want.
func (a *app) waitSplit(want split, timeout time.Duration) {
	a.t.Helper()
	var last split
	var err error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if last, err = a.trafficSplit(); err == nil && last == want {
			return
		}
	}
	a.t.Fatalf("TrafficSplit %s/%s never carried %s: last %s, %v", a.ns, appName, want, last, err)
}

// waitSplitAtStep polls until the TrafficSplit carries the weight of a
// step the Canary is held at (a Progressing status with weight w > 0 read
// before and after it: canary w, primary 100-w) and returns the weights
// it saw so; a split that never matches its step fails the test.
func (a *app) waitSplitAtStep(timeout time.Duration) []int32 {
	a.t.Helper()
	var matched []int32
	var last string
	deadline := time.Now().Add(timeout)
	for ; time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		before, err := a.canary()
		if err != nil {
			continue
		}
		s, err := a.trafficSplit()
		after, err2 := a.canary()
		if err != nil || err2 != nil {
			last = fmt.Sprint(err, err2)
			continue
		}
		w := before.Status.CanaryWeight
		held := before.Status.Phase == v1alpha1.PhaseProgressing && after.Status.Phase == v1alpha1.PhaseProgressing &&
			after.Status.CanaryWeight == w && w > 0
		if !held {
			if len(matched) > 0 && after.Status.Phase != v1alpha1.PhaseProgressing {
				return matched
			}
			continue
		}
		last = fmt.Sprintf("status weight %d, TrafficSplit %s", w, s)
		if s == (split{canary: int64(w), primary: int64(100 - w)}) && (len(matched) == 0 || matched[len(matched)-1] != w) {
			matched = append(matched, w)
		}
	}
	if len(matched) == 0 {
		a.t.Fatalf("the TrafficSplit never carried the weight of a step: last %s", last)
	}
	return matched
}

// checkKindMissing waits until the release, without the TrafficSplit kind
// installed, is halted with a rejection that names the kind: the status
// message and the TrafficApplied condition (reason Rejected).
func (a *app) checkKindMissing(timeout time.Duration) {
	a.t.Helper()
	st, err := a.waitFor(timeout, func(st v1alpha1.CanaryStatus) (bool, error) {
		if st.Phase != "" && st.Phase != v1alpha1.PhaseInitializing {
			return false, fmt.Errorf("phase %s without the TrafficSplit kind", st.Phase)
		}
		cond := apimeta.FindStatusCondition(st.Conditions, v1alpha1.ConditionTrafficApplied)
		return cond != nil && cond.Reason == "Rejected" && strings.Contains(cond.Message, `"TrafficSplit"`), nil
	})
	if err != nil {
		a.t.Fatalf("without the TrafficSplit kind: %v", err)
	}
	if !strings.Contains(st.Message, "rejected") || !strings.Contains(st.Message, `kind "TrafficSplit"`) {
		a.t.Errorf("status message %q does not name the missing kind", st.Message)
	}
	a.t.Logf("without the TrafficSplit kind: %s", st.Message)
}

// installSMIAfterRejection installs the SMI CRDs once the release is halted
// without them, and checks that the release then initializes on its own
// (not through the progress deadline) with the split on the primary.
func (a *app) installSMIAfterRejection() {
	a.t.Helper()
	a.checkKindMissing(30 * time.Second)
	harness.InstallSMICRDs(a.t, a.e.c)
	a.waitPhase(v1alpha1.PhaseInitialized, time.Minute)
	for _, ev := range a.events() {
		if strings.Contains(ev, "did not confirm weight 0") {
			a.t.Errorf("initialized through the progress deadline, not the written TrafficSplit: %s", ev)
		}
	}
	a.waitSplit(split{canary: 0, primary: 100}, 30*time.Second)
}

// checkSplitDeleted deletes the Canary and waits until its TrafficSplit
// is gone.
func (a *app) checkSplitDeleted(timeout time.Duration) {
	a.t.Helper()
	a.kubectl("", "delete", "canaries.serin.dev", appName, "-n", a.ns, "--wait=false")
	var err error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, err = a.trafficSplit(); apierrors.IsNotFound(err) {
			return
		}
	}
	a.t.Fatalf("TrafficSplit %s/%s still there after the Canary was deleted: %v", a.ns, appName, err)
}
