// Package compat runs Flagger's flagger.app/v1beta1 Canaries with serin's
// engine: each is mirrored into a serin.dev Canary of the same name that
// it owns (spec converted in by api/flaggerv1beta1), the engine runs that
// Canary as any other, and its status is converted back out into the
// Flagger object. One internal model, one place of conversion; the
// release state stays in the serin.dev Canary's status, so a restarted
// serin resumes as it does for its own kind.
package compat

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/serin-dev/serin/api/flaggerv1beta1"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// +kubebuilder:rbac:groups=flagger.app,resources=canaries,verbs=get;list;watch
// +kubebuilder:rbac:groups=flagger.app,resources=canaries/status;canaries/finalizers,verbs=get;update;patch

// fieldOwner names serin's mirror in managed fields.
var fieldOwner = client.FieldOwner("serin-flagger-compat")

// Mirror keeps a serin.dev Canary for each flagger.app Canary.
type Mirror struct {
	Client client.Client
	Log    logr.Logger
}

// SetupWithManager watches flagger.app Canaries and the serin.dev
// Canaries they own.
func (m *Mirror) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("flagger-compat").
		For(&flaggerv1beta1.Canary{}).Owns(&v1alpha1.Canary{}).Complete(m)
}

// Reconcile brings the mirror's spec in line with the Flagger Canary and
// the Flagger Canary's status in line with the mirror's.
func (m *Mirror) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var fc flaggerv1beta1.Canary
	if err := m.Client.Get(ctx, req.NamespacedName, &fc); err != nil {
		// Gone: the garbage collector removes the mirror it owned.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !fc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	var sc v1alpha1.Canary
	err := m.Client.Get(ctx, req.NamespacedName, &sc)
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, m.refused(ctx, &fc, m.create(ctx, &fc))
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get serin canary: %w", err)
	}
	if !metav1.IsControlledBy(&sc, &fc) {
		m.Log.Info("a serin.dev Canary of the same name exists; the flagger.app Canary is not run",
			"namespace", fc.Namespace, "name", fc.Name)
		return ctrl.Result{}, nil
	}
	if want := flaggerv1beta1.SpecToSerin(&fc.Spec); !equality.Semantic.DeepEqual(sc.Spec, want) {
		sc.Spec = want
		if err := m.Client.Update(ctx, &sc, fieldOwner); err != nil {
			return ctrl.Result{}, m.refused(ctx, &fc, fmt.Errorf("update serin canary: %w", err))
		}
	}
	if st := flaggerv1beta1.StatusFromSerin(&sc.Status); !equality.Semantic.DeepEqual(fc.Status, st) {
		fc.Status = st
		if err := m.Client.Status().Update(ctx, &fc, fieldOwner); err != nil {
			return ctrl.Result{}, fmt.Errorf("update flagger canary status: %w", err)
		}
	}
	return ctrl.Result{}, nil
}

// create makes the mirror, owned (as controller) by fc.
func (m *Mirror) create(ctx context.Context, fc *flaggerv1beta1.Canary) error {
	sc := flaggerv1beta1.ToSerin(fc)
	if err := controllerutil.SetControllerReference(fc, sc, m.Client.Scheme()); err != nil {
		return fmt.Errorf("own serin canary: %w", err)
	}
	if err := m.Client.Create(ctx, sc, fieldOwner); err != nil {
		return fmt.Errorf("create serin canary: %w", err)
	}
	m.Log.V(1).Info("mirrored flagger.app canary", "namespace", fc.Namespace, "name", fc.Name)
	return nil
}

// ConditionMirrored is the condition of a flagger.app Canary that says
// why serin could not run it: False with reason Invalid and the API
// server's message when serin's validation rejects its spec.
const ConditionMirrored flaggerv1beta1.CanaryConditionType = "Mirrored"

// refused shows an invalid spec in the Flagger Canary's status, where its
// author looks; other errors are returned to be retried.
func (m *Mirror) refused(ctx context.Context, fc *flaggerv1beta1.Canary, err error) error {
	if err == nil || !apierrors.IsInvalid(err) {
		return err
	}
	now := metav1.Now()
	cond := flaggerv1beta1.CanaryCondition{Type: ConditionMirrored, Status: metav1.ConditionFalse, Reason: "Invalid",
		Message: err.Error(), LastUpdateTime: now, LastTransitionTime: now}
	conds := []flaggerv1beta1.CanaryCondition{cond}
	for _, c := range fc.Status.Conditions {
		if c.Type == ConditionMirrored {
			if c.Message == cond.Message {
				return nil
			}
			continue
		}
		conds = append(conds, c)
	}
	fc.Status.Conditions = conds
	if uerr := m.Client.Status().Update(ctx, fc, fieldOwner); uerr != nil {
		return fmt.Errorf("record refusal: %w", uerr)
	}
	return nil
}
