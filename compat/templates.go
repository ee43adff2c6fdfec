package compat

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/flaggerv1beta1"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// +kubebuilder:rbac:groups=flagger.app,resources=metrictemplates;alertproviders,verbs=get;list;watch

// MetricTemplate reads the flagger.app MetricTemplate namespace/name as
// serin's, so a Canary's templateRef finds a template written for
// Flagger (serin.dev templates of the same name come first: the caller
// asks here only when there is none).
func MetricTemplate(ctx context.Context, r client.Reader, namespace, name string) (*v1alpha1.MetricTemplate, error) {
	var t flaggerv1beta1.MetricTemplate
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &t); err != nil {
		return nil, fmt.Errorf("read flagger.app metric template %s/%s: %w", namespace, name, err)
	}
	return flaggerv1beta1.MetricTemplateToSerin(&t), nil
}

// AlertProvider reads the flagger.app AlertProvider namespace/name as
// serin's, for an alert's providerRef.
func AlertProvider(ctx context.Context, r client.Reader, namespace, name string) (*v1alpha1.AlertProvider, error) {
	var p flaggerv1beta1.AlertProvider
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &p); err != nil {
		return nil, fmt.Errorf("read flagger.app alert provider %s/%s: %w", namespace, name, err)
	}
	return flaggerv1beta1.AlertProviderToSerin(&p), nil
}
