package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/flaggerv1beta1"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// Takeover hands flagger.app Canaries over to serin. With Apply false it
// only prints the steps it would take.
type Takeover struct {
	Client client.Client
	Out    io.Writer
	// Apply carries the steps out; Force takes over Canaries it would
	// refuse (Flagger seems to run, a release is under way).
	Apply, Force bool
	// Settle is how long the Canaries are watched for a running Flagger;
	// Drain how long the primary's pods keep serving after the Service
	// and routes point away from them (kube-proxies and proxies catch
	// up); Timeout bounds every wait, Poll is the pace of waits.
	Settle, Drain, Timeout, Poll time.Duration

	drained bool
}

// routeKinds are the router objects Flagger makes, deleted when the
// Canary owns them and their CRD is installed.
var routeKinds = []schema.GroupKind{
	{Group: "networking.istio.io", Kind: "DestinationRule"},
	{Group: "networking.istio.io", Kind: "VirtualService"},
	{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute"},
	{Group: "split.smi-spec.io", Kind: "TrafficSplit"},
}

// takeoverPhases are the phases of a Canary between releases.
var takeoverPhases = []v1alpha1.CanaryPhase{v1alpha1.PhaseInitialized, v1alpha1.PhaseSucceeded}

// Run takes over the flagger.app Canaries of namespace (every namespace
// when "") named name (every one when ""), one at a time.
func (t *Takeover) Run(ctx context.Context, namespace, name string) error {
	canaries, err := t.list(ctx, namespace, name)
	if err != nil {
		return err
	}
	if len(canaries) == 0 {
		if name != "" {
			var sc v1alpha1.Canary
			if found, err := t.get(ctx, namespace, name, &sc); err != nil || !found {
				return errors.Join(fmt.Errorf("flagger.app Canary %s not found in namespace %s", name, namespace), err)
			}
			fmt.Fprintf(t.Out, "canary %s/%s: no flagger.app Canary, and serin's Canary exists: taken over already\n", namespace, name)
			return nil
		}
		fmt.Fprintln(t.Out, "no flagger.app Canaries: nothing to take over")
		return nil
	}
	refusals, err := t.preflight(ctx, canaries, namespace, name)
	if err != nil {
		return err
	}
	var failed []string
	for i := range canaries {
		c := &canaries[i]
		id := c.Namespace + "/" + c.Name
		if why := refusals[id]; len(why) > 0 && !t.Force {
			fmt.Fprintf(t.Out, "canary %s: refused: %s (--force takes it over anyway)\n", id, strings.Join(why, "; "))
			failed = append(failed, id)
			continue
		}
		if err := t.one(ctx, c); err != nil {
			fmt.Fprintf(t.Out, "canary %s: %v\n", id, err)
			failed = append(failed, id)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("not taken over: %s", strings.Join(failed, ", "))
	}
	return nil
}

// list reads the flagger.app Canaries, sorted by namespace and name.
func (t *Takeover) list(ctx context.Context, namespace, name string) ([]flaggerv1beta1.Canary, error) {
	var list flaggerv1beta1.CanaryList
	if err := t.Client.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		if apimeta.IsNoMatchError(err) {
			return nil, errors.New("the flagger.app Canary CRD is not installed: nothing to take over")
		}
		return nil, fmt.Errorf("list flagger.app canaries: %w", err)
	}
	out := slices.DeleteFunc(list.Items, func(c flaggerv1beta1.Canary) bool { return name != "" && c.Name != name })
	slices.SortFunc(out, func(a, b flaggerv1beta1.Canary) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out, nil
}

// preflight finds why Canaries should not be taken over: Flagger's
// controller appears to run, or a Canary is mid-release or changes while
// watched for Settle.
func (t *Takeover) preflight(ctx context.Context, canaries []flaggerv1beta1.Canary, namespace, name string) (map[string][]string, error) {
	out := map[string][]string{}
	running, err := t.flaggerRunning(ctx)
	if err != nil {
		return nil, err
	}
	if t.Settle > 0 {
		fmt.Fprintf(t.Out, "watching the Canaries for %s: a running Flagger changes them\n", t.Settle)
		if err := sleep(ctx, t.Settle); err != nil {
			return nil, err
		}
	}
	later, err := t.list(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	for i := range canaries {
		c := &canaries[i]
		id := c.Namespace + "/" + c.Name
		if running != "" {
			out[id] = append(out[id], "Flagger's controller appears to be running ("+running+")")
		}
		if !slices.Contains(takeoverPhases, c.Status.Phase) {
			out[id] = append(out[id], fmt.Sprintf("phase %q is not between releases (%v)", c.Status.Phase, takeoverPhases))
		}
		if j := slices.IndexFunc(later, func(l flaggerv1beta1.Canary) bool { return l.UID == c.UID }); j >= 0 &&
			later[j].ResourceVersion != c.ResourceVersion {
			out[id] = append(out[id], "it changed while watched: is Flagger still running?")
		}
	}
	return out, nil
}

// flaggerRunning names a Deployment of Flagger with available pods ("" if
// none is seen).
func (t *Takeover) flaggerRunning(ctx context.Context) (string, error) {
	var list appsv1.DeploymentList
	if err := t.Client.List(ctx, &list); err != nil {
		if apierrors.IsForbidden(err) {
			fmt.Fprintln(t.Out, "warning: cannot list Deployments in every namespace to look for Flagger's controller")
			return "", nil
		}
		return "", fmt.Errorf("look for flagger's controller: %w", err)
	}
	for _, d := range list.Items {
		isFlagger := d.Name == "flagger" || d.Labels["app.kubernetes.io/name"] == "flagger" || d.Labels["app"] == "flagger"
		if isFlagger && d.Status.AvailableReplicas > 0 {
			return fmt.Sprintf("Deployment %s/%s has %d available pods", d.Namespace, d.Name, d.Status.AvailableReplicas), nil
		}
	}
	return "", nil
}

// one takes over one Canary: observe, plan, carry out the first step,
// again, until nothing is left (with Apply), or prints the plan.
func (t *Takeover) one(ctx context.Context, c *flaggerv1beta1.Canary) error {
	id := c.Namespace + "/" + c.Name
	for range 100 {
		st, err := t.observe(ctx, c.Namespace, c.Name)
		if err != nil {
			return err
		}
		if st.Serin != nil && st.Flagger != nil && metav1.IsControlledBy(st.Serin, st.Flagger) {
			fmt.Fprintf(t.Out, "canary %s: serin already runs it (flagger.compat): its Deployment is serin's stable workload and nothing is left to take over; "+
				"keep the flagger.app Canary, or replace it with `serin import` output\n", id)
			return nil
		}
		if st.Serin != nil && st.Primary != nil && st.Flagger != nil && !t.Force {
			return fmt.Errorf("a serin.dev Canary %s exists while Flagger's %s still serves: refused (--force takes it over anyway)", c.Name, st.Primary.Name)
		}
		steps, err := Plan(st)
		if err != nil {
			return err
		}
		if len(steps) == 0 {
			fmt.Fprintf(t.Out, "canary %s: taken over by serin\n", id)
			return nil
		}
		if !t.Apply {
			fmt.Fprintf(t.Out, "canary %s (Flagger phase %s): dry run, --apply carries out:\n", id, phaseOf(st.Flagger))
			for i, s := range steps {
				fmt.Fprintf(t.Out, "  %d. %s\n", i+1, s.Say)
			}
			return nil
		}
		fmt.Fprintf(t.Out, "canary %s: %s\n", id, steps[0].Say)
		if err := t.do(ctx, st, steps[0]); err != nil {
			return fmt.Errorf("%s: %w", steps[0].Kind, err)
		}
	}
	return errors.New("gave up after 100 steps")
}

func phaseOf(c *flaggerv1beta1.Canary) string {
	if c.Status.Phase == "" {
		return "unknown"
	}
	return string(c.Status.Phase)
}

// observe reads what the takeover of namespace/name needs.
func (t *Takeover) observe(ctx context.Context, ns, name string) (*State, error) {
	st := &State{}
	var fc flaggerv1beta1.Canary
	if found, err := t.get(ctx, ns, name, &fc); err != nil || !found {
		return st, err
	}
	st.Flagger = &fc
	target := targetName(&fc)
	objs := []struct {
		name string
		obj  client.Object
	}{
		{name, &v1alpha1.Canary{}},
		{target, &appsv1.Deployment{}},
		{target + primarySuffix, &appsv1.Deployment{}},
		{serviceName(&fc), &corev1.Service{}},
	}
	found := make([]bool, len(objs))
	for i, o := range objs {
		var err error
		if found[i], err = t.get(ctx, ns, o.name, o.obj); err != nil {
			return nil, err
		}
	}
	if found[0] {
		st.Serin = objs[0].obj.(*v1alpha1.Canary)
	}
	if found[1] {
		st.Target = objs[1].obj.(*appsv1.Deployment)
	}
	if found[2] {
		st.Primary = objs[2].obj.(*appsv1.Deployment)
	}
	if found[3] {
		st.Apex = objs[3].obj.(*corev1.Service)
	}
	if err := t.observeOwned(ctx, st); err != nil {
		return nil, err
	}
	return st, nil
}

// observeOwned reads Flagger's autoscaler of the primary, its Services
// and its routes.
func (t *Takeover) observeOwned(ctx context.Context, st *State) error {
	fc := st.Flagger
	if ref := fc.Spec.AutoscalerRef; ref != nil && ref.Kind == "HorizontalPodAutoscaler" {
		var h autoscalingv2.HorizontalPodAutoscaler
		found, err := t.get(ctx, fc.Namespace, ref.Name+primarySuffix, &h)
		if err != nil {
			return err
		}
		if found {
			st.PrimaryHPA = &h
		}
	}
	svc := serviceName(fc)
	for _, n := range []string{svc + primarySuffix, svc + canarySuffix} {
		var s corev1.Service
		found, err := t.get(ctx, fc.Namespace, n, &s)
		if err != nil {
			return err
		}
		if found && ownedBy(&s, fc.UID) {
			st.Services = append(st.Services, &s)
		}
	}
	for _, gk := range routeKinds {
		m, err := t.Client.RESTMapper().RESTMapping(gk)
		if apimeta.IsNoMatchError(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("look up %s: %w", gk, err)
		}
		var list unstructured.UnstructuredList
		list.SetGroupVersionKind(m.GroupVersionKind.GroupVersion().WithKind(gk.Kind + "List"))
		if err := t.Client.List(ctx, &list, client.InNamespace(fc.Namespace)); err != nil {
			return fmt.Errorf("list %s: %w", gk, err)
		}
		for i := range list.Items {
			if ownedBy(&list.Items[i], fc.UID) {
				st.Routes = append(st.Routes, &list.Items[i])
			}
		}
	}
	return nil
}

// get reads one object, reporting whether it exists.
func (t *Takeover) get(ctx context.Context, ns, name string, obj client.Object) (bool, error) {
	err := t.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %T %s/%s: %w", obj, ns, name, err)
	}
	return true, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
