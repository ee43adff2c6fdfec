package harness

import (
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/internal/scheme"
)

// Client is a controller-runtime client (with watch) that knows
// Kubernetes', serin's and Istio's networking types.
func Client(cfg *rest.Config) (client.WithWatch, error) {
	s, err := scheme.New()
	if err != nil {
		return nil, err
	}
	return client.NewWithWatch(cfg, client.Options{Scheme: s})
}
