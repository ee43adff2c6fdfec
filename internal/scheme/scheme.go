// Package scheme is the one runtime scheme serin's clients use: Kubernetes'
// built-in types, serin's API, Flagger's flagger.app kinds and Istio's
// networking types
// and Gateway API's routes.
package scheme

import (
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/serin-dev/serin/api/flaggerv1beta1"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// New is a scheme that knows Kubernetes', serin's and Istio's networking
// types; the controller, the CLI and the integration tests use it.
func New() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, flaggerv1beta1.AddToScheme, networkingv1alpha3.AddToScheme, gwv1.Install} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}
