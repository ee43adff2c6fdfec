package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/flaggerv1beta1"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// fieldOwner names the takeover in managed fields.
var fieldOwner = client.FieldOwner("serin-migrate")

// do carries out one step. A conflict (someone wrote in between) is not
// an error: the caller observes and plans again.
func (t *Takeover) do(ctx context.Context, st *State, s Step) error {
	var err error
	switch s.Kind {
	case StepScaleUp:
		err = t.scaleUp(ctx, st.Target, s)
	case StepWaitReady:
		err = t.waitFor(ctx, "the pods of Deployment "+st.Target.Name, func() (bool, error) {
			var d appsv1.Deployment
			if _, err := t.get(ctx, st.Target.Namespace, st.Target.Name, &d); err != nil {
				return false, err
			}
			return DeploymentReady(&d), nil
		})
	case StepSwitchService:
		err = t.switchService(ctx, st, s)
	case StepDeleteRoute, StepDeleteHPA, StepDeletePrimary, StepDeleteService:
		err = t.delete(ctx, s)
	case StepCreateCanary:
		err = client.IgnoreAlreadyExists(t.Client.Create(ctx, s.Canary, fieldOwner))
	case StepWaitCanary:
		err = t.waitFor(ctx, "serin to initialize Canary "+st.Flagger.Name+" (is serin's controller running?)", func() (bool, error) {
			var c v1alpha1.Canary
			found, err := t.get(ctx, st.Flagger.Namespace, st.Flagger.Name, &c)
			return found && initialized(&c), err
		})
	case StepDeleteFlagger:
		err = t.deleteFlagger(ctx, st.Flagger)
	default:
		err = fmt.Errorf("unknown step %s", s.Kind)
	}
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// scaleUp runs the step's template and replicas on the user's
// Deployment, unpaused.
func (t *Takeover) scaleUp(ctx context.Context, d *appsv1.Deployment, s Step) error {
	d = d.DeepCopy()
	d.Spec.Template = *s.Template
	d.Spec.Replicas = &s.Replicas
	d.Spec.Paused = false
	return t.Client.Update(ctx, d, fieldOwner)
}

// switchService points the apex Service at the user's pods, only while
// they serve: the Service never selects no ready pod. The drain starts.
func (t *Takeover) switchService(ctx context.Context, st *State, s Step) error {
	var d appsv1.Deployment
	if _, err := t.get(ctx, st.Target.Namespace, st.Target.Name, &d); err != nil {
		return err
	}
	ready, err := t.readyPods(ctx, st.Apex.Namespace, s.Selector)
	if err != nil {
		return err
	}
	if ready == 0 || !DeploymentReady(&d) {
		return fmt.Errorf("refusing to switch Service %s: %d ready pods match %s", st.Apex.Name, ready, selectorString(s.Selector))
	}
	svc := st.Apex.DeepCopy()
	svc.Spec.Selector = s.Selector
	svc.OwnerReferences = slices.DeleteFunc(svc.OwnerReferences, func(r metav1.OwnerReference) bool { return r.UID == st.Flagger.UID })
	if err := t.Client.Update(ctx, svc, fieldOwner); err != nil {
		return err
	}
	t.drained = false
	fmt.Fprintf(t.Out, "canary %s/%s: Service %s now selects %d ready pods of Deployment %s\n",
		st.Flagger.Namespace, st.Flagger.Name, svc.Name, ready, d.Name)
	return nil
}

// readyPods counts the ready pods the selector matches that are not being
// deleted.
func (t *Takeover) readyPods(ctx context.Context, ns string, sel map[string]string) (int, error) {
	var pods corev1.PodList
	if err := t.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(sel)}); err != nil {
		return 0, err
	}
	n := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
			return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
		}) {
			n++
		}
	}
	return n, nil
}

// delete deletes the step's object (that very object: UID precondition),
// after the drain when it is the first deletion of this run.
func (t *Takeover) delete(ctx context.Context, s Step) error {
	if !t.drained && t.Drain > 0 {
		fmt.Fprintf(t.Out, "draining for %s: clients and proxies move over before anything that served is deleted\n", t.Drain)
		if err := sleep(ctx, t.Drain); err != nil {
			return err
		}
	}
	// Traffic that the deleted route sent to the primary now follows the
	// Service: drain again before the primary goes.
	t.drained = s.Kind != StepDeleteRoute
	uid := s.Object.GetUID()
	err := t.Client.Delete(ctx, s.Object, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	return client.IgnoreNotFound(err)
}

// deleteFlagger removes Flagger's finalizer (Flagger would revert the
// Deployment it no longer runs) and deletes the flagger.app Canary; the
// garbage collector takes what it still owns.
func (t *Takeover) deleteFlagger(ctx context.Context, fc *flaggerv1beta1.Canary) error {
	if i := slices.Index(fc.Finalizers, flaggerFinalizer); i >= 0 {
		fc = fc.DeepCopy()
		fc.Finalizers = slices.Delete(fc.Finalizers, i, i+1)
		if err := t.Client.Update(ctx, fc, fieldOwner); err != nil {
			return err
		}
	}
	uid := fc.UID
	return client.IgnoreNotFound(t.Client.Delete(ctx, fc, client.Preconditions{UID: &uid}))
}

// waitFor polls cond until it holds, for at most Timeout.
func (t *Takeover) waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if err := sleep(ctx, t.Poll); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("timed out after %s waiting for %s", t.Timeout, what)
			}
			return err
		}
	}
}
