package migrate

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/flaggerv1beta1"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// What Flagger makes for a Canary, by name.
const (
	primarySuffix = "-primary"
	canarySuffix  = "-canary"
	// flaggerIDAnnotation is the annotation Flagger puts on the primary's
	// pod template so that a changed config restarts its pods.
	flaggerIDAnnotation = "flagger-id"
	// flaggerFinalizer is Flagger's finalizer (revertOnDeletion).
	flaggerFinalizer = "finalizer.flagger.app"
)

// State is what the takeover of one flagger.app Canary observed.
type State struct {
	// Flagger is the flagger.app Canary (nil once deleted).
	Flagger *flaggerv1beta1.Canary
	// Serin is the serin.dev Canary of the same name (nil when none).
	Serin *v1alpha1.Canary
	// Target is the user's Deployment, Primary Flagger's <target>-primary
	// (nil when gone), PrimaryHPA Flagger's autoscaler of the primary.
	Target, Primary *appsv1.Deployment
	PrimaryHPA      *autoscalingv2.HorizontalPodAutoscaler
	// Apex is the Service <service name> the clients use.
	Apex *corev1.Service
	// Services are Flagger's <svc>-primary and <svc>-canary, when the
	// flagger.app Canary owns them.
	Services []*corev1.Service
	// Routes are the router objects the flagger.app Canary owns (only of
	// kinds whose CRD is installed), sorted by kind and name.
	Routes []*unstructured.Unstructured
}

// StepKind names what a step does.
type StepKind string

// The steps of a takeover, in order.
const (
	StepScaleUp       StepKind = "ScaleUp"
	StepWaitReady     StepKind = "WaitReady"
	StepSwitchService StepKind = "SwitchService"
	StepDeleteRoute   StepKind = "DeleteRoute"
	StepDeleteHPA     StepKind = "DeletePrimaryHPA"
	StepDeletePrimary StepKind = "DeletePrimary"
	StepDeleteService StepKind = "DeleteService"
	StepCreateCanary  StepKind = "CreateCanary"
	StepWaitCanary    StepKind = "WaitCanary"
	StepDeleteFlagger StepKind = "DeleteFlaggerCanary"
)

// Step is one step of a takeover: what to do and a line that says it.
type Step struct {
	Kind StepKind
	Say  string
	// Template and Replicas (ScaleUp): what the user's Deployment runs.
	Template *corev1.PodTemplateSpec
	Replicas int32
	// Selector (SwitchService): the apex Service's new selector.
	Selector map[string]string
	// Object (deletions): the object to delete, with its UID.
	Object client.Object
	// Canary (CreateCanary): serin's Canary.
	Canary *v1alpha1.Canary
}

// Plan lists the steps left to take over the Canary st shows, in order,
// each decided from st alone: run the first, observe again, plan again.
// Once the flagger.app Canary is gone there is nothing left.
func Plan(st *State) ([]Step, error) {
	if st.Flagger == nil {
		return nil, nil
	}
	if st.Target == nil {
		return nil, fmt.Errorf("deployment %s not found", targetName(st.Flagger))
	}
	var steps []Step
	if st.Primary != nil {
		up, err := bringUp(st)
		if err != nil {
			return nil, err
		}
		steps = append(steps, up...)
	}
	if sw, ok, err := switchService(st); err != nil {
		return nil, err
	} else if ok {
		steps = append(steps, sw)
	}
	steps = append(steps, cleanUp(st)...)
	if st.Serin == nil {
		sc := flaggerv1beta1.ToSerin(st.Flagger)
		steps = append(steps, Step{Kind: StepCreateCanary, Canary: sc,
			Say: fmt.Sprintf("create serin.dev Canary %s (spec converted from the flagger.app Canary); serin records the running template as stable and starts no release", sc.Name)})
	}
	if st.Serin == nil || !initialized(st.Serin) {
		steps = append(steps, Step{Kind: StepWaitCanary, Say: fmt.Sprintf("wait until serin has initialized Canary %s", st.Flagger.Name)})
	}
	steps = append(steps, Step{Kind: StepDeleteFlagger, Object: st.Flagger,
		Say: fmt.Sprintf("delete flagger.app Canary %s (its finalizer removed: nothing is left to revert)", st.Flagger.Name)})
	return steps, nil
}

func initialized(c *v1alpha1.Canary) bool {
	return c.Status.Phase == v1alpha1.PhaseInitialized || c.Status.Phase == v1alpha1.PhaseSucceeded
}

// bringUp scales the user's Deployment up on the primary's template and
// waits for it.
func bringUp(st *State) ([]Step, error) {
	tpl, err := MapTemplate(st.Primary, st.Target)
	if err != nil {
		return nil, err
	}
	want := primaryReplicas(st)
	var steps []Step
	cur := int32(1)
	if st.Target.Spec.Replicas != nil {
		cur = *st.Target.Spec.Replicas
	}
	sameTemplate := v1alpha1.TemplateHash(tpl) == v1alpha1.TemplateHash(&st.Target.Spec.Template)
	if !sameTemplate || cur < want || st.Target.Spec.Paused {
		what := "scale Deployment %s to %d replicas (its template is the one %s runs)"
		if !sameTemplate {
			what = "set Deployment %s to %d replicas on the pod template %s runs (labels mapped back)"
		}
		steps = append(steps, Step{Kind: StepScaleUp, Template: tpl, Replicas: max(cur, want),
			Say: fmt.Sprintf(what, st.Target.Name, max(cur, want), st.Primary.Name)})
		return append(steps, waitReady(st.Target.Name, max(cur, want))), nil
	}
	if !DeploymentReady(st.Target) {
		steps = append(steps, waitReady(st.Target.Name, cur))
	}
	return steps, nil
}

func waitReady(name string, n int32) Step {
	return Step{Kind: StepWaitReady, Replicas: n, Say: fmt.Sprintf("wait until the %d pods of Deployment %s are ready", n, name)}
}

// primaryReplicas are the replicas the primary serves with: its
// autoscaler's desired count when it has one, else its own.
func primaryReplicas(st *State) int32 {
	if st.PrimaryHPA != nil && st.PrimaryHPA.Status.DesiredReplicas > 0 {
		return st.PrimaryHPA.Status.DesiredReplicas
	}
	if st.Primary.Spec.Replicas != nil {
		return *st.Primary.Spec.Replicas
	}
	return 1
}

// DeploymentReady reports whether every replica of d runs its current
// template and is ready.
func DeploymentReady(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas >= want && s.ReadyReplicas >= want &&
		s.AvailableReplicas >= want && s.Replicas == s.UpdatedReplicas
}

// switchService points the apex Service at the user's pods and takes it
// from the flagger.app Canary's ownership, so that deleting the Canary
// leaves it.
func switchService(st *State) (Step, bool, error) {
	if st.Apex == nil {
		return Step{}, false, nil
	}
	sel := map[string]string{}
	for k := range st.Apex.Spec.Selector {
		v, ok := st.Target.Spec.Template.Labels[k]
		if !ok {
			return Step{}, false, fmt.Errorf("service %s selects on %s, which the pods of Deployment %s lack", st.Apex.Name, k, st.Target.Name)
		}
		sel[k] = v
	}
	if maps.Equal(sel, st.Apex.Spec.Selector) && !ownedBy(st.Apex, st.Flagger.UID) {
		return Step{}, false, nil
	}
	return Step{Kind: StepSwitchService, Selector: sel, Object: st.Apex,
		Say: fmt.Sprintf("point Service %s at the pods of Deployment %s (selector %s), once they serve; the flagger.app Canary no longer owns it",
			st.Apex.Name, st.Target.Name, selectorString(sel))}, true, nil
}

// cleanUp deletes what Flagger made and nothing needs any more, routes
// first (traffic then follows the Service), the primary's pods last but
// one, then its Services; only what the flagger.app Canary owns.
func cleanUp(st *State) []Step {
	var steps []Step
	for _, r := range st.Routes {
		steps = append(steps, Step{Kind: StepDeleteRoute, Object: r, Say: fmt.Sprintf("delete %s %s (Flagger's route)", r.GetKind(), r.GetName())})
	}
	uid := st.Flagger.UID
	if h := st.PrimaryHPA; h != nil && ownedBy(h, uid) {
		steps = append(steps, Step{Kind: StepDeleteHPA, Object: h, Say: fmt.Sprintf("delete HorizontalPodAutoscaler %s", h.Name)})
	}
	if p := st.Primary; p != nil && ownedBy(p, uid) {
		steps = append(steps, Step{Kind: StepDeletePrimary, Object: p, Say: fmt.Sprintf("delete Deployment %s (after a drain)", p.Name)})
	}
	for _, s := range st.Services {
		steps = append(steps, Step{Kind: StepDeleteService, Object: s, Say: fmt.Sprintf("delete Service %s (serin makes its own)", s.Name)})
	}
	return steps
}

// ownedBy reports whether obj has an owner reference to uid.
func ownedBy(obj metav1.Object, uid types.UID) bool {
	return slices.ContainsFunc(obj.GetOwnerReferences(), func(r metav1.OwnerReference) bool { return r.UID == uid })
}

func selectorString(sel map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		parts = append(parts, k+"="+sel[k])
	}
	return strings.Join(parts, ",")
}

func targetName(c *flaggerv1beta1.Canary) string {
	if c.Spec.TargetRef.Name != "" {
		return c.Spec.TargetRef.Name
	}
	return c.Name
}

// serviceName is the apex Service of a Flagger Canary.
func serviceName(c *flaggerv1beta1.Canary) string {
	if c.Spec.Service.Name != "" {
		return c.Spec.Service.Name
	}
	return targetName(c)
}
