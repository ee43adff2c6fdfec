package app

import (
	"fmt"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/serin-dev/serin/compat"
)

// setupFlaggerCompat runs flagger.app/v1beta1 Canaries with serin's
// engine (--flagger-compat; the chart's flagger.compat installs their
// CRDs).
func setupFlaggerCompat(mgr ctrl.Manager, o controllerOptions, log logr.Logger) error {
	if !o.flaggerCompat {
		return nil
	}
	m := &compat.Mirror{Client: mgr.GetClient(), Log: log.WithName("flagger-compat")}
	if err := m.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("flagger compatibility: %w", err)
	}
	return nil
}
