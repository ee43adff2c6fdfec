// Package providers answers a MetricTemplate's query with one number,
// whatever backend its provider.type names: Prometheus (and the
// Prometheus-compatible Thanos, Mimir and VictoriaMetrics) through
// analysis/prom, and Graphite, InfluxDB, Datadog, New Relic and
// CloudWatch through their HTTP APIs, with Flagger's documented defaults,
// Secret keys and choice of the one value.
//
// A query that the backend answers without a value (no series, no
// points, only nulls, NaN) is ErrNoData, never zero: the judges wait.
// Every connection goes through the egress guard (internal/egress), no
// redirect is followed and no proxy is used; provider.headers go with
// every request, the Secret's credentials win over them. A Secret's
// credentials go only to an address the Secret allows (prom.Bind), or to
// the vendor's public API when the template names no address. Errors name
// the provider type and its redacted address, and never hold a value of
// the Secret or a body the backend answered beyond its own error message.
package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/serin-dev/serin/analysis/prom"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/egress"
)

// Request is one query: the rendered query text and its window, which
// ends at End and is the metric's interval long.
type Request struct {
	Query  string
	Window time.Duration
	End    time.Time
}

// ErrNoData is returned, wrapped, when the backend answered without a
// value.
var ErrNoData = errors.New("no data")

// Factory runs queries against MetricTemplate providers. Its zero value
// knows no Prometheus and reads no Secrets.
type Factory struct {
	// Prometheus builds Prometheus clients (the default address and its
	// credentials included).
	Prometheus *prom.Factory
	// Secrets reads provider Secrets; nil refuses providers with a
	// secretRef.
	Secrets prom.SecretReader
	// Egress is the policy every connection is checked against.
	Egress egress.Policy
	// AWSCredentials, when set, replaces AWS's default credential chain
	// for CloudWatch (tests).
	AWSCredentials aws.CredentialsProvider

	mu         sync.Mutex
	transports map[bool]*http.Transport
}

// runner runs one request against one backend.
type runner func(ctx context.Context, c *conn, req Request) (float64, error)

var runners = map[v1alpha1.ProviderType]runner{
	v1alpha1.ProviderGraphite:   queryGraphite,
	v1alpha1.ProviderInfluxDB:   queryInfluxDB,
	v1alpha1.ProviderDatadog:    queryDatadog,
	v1alpha1.ProviderNewRelic:   queryNewRelic,
	v1alpha1.ProviderCloudWatch: queryCloudWatch,
}

// Query runs req against provider p of a MetricTemplate whose Secret lives
// in namespace; a nil p is serin's default Prometheus.
func (f *Factory) Query(ctx context.Context, namespace string, p *v1alpha1.MetricProvider, req Request) (float64, error) {
	if p == nil || p.Type == "" || p.Type == v1alpha1.ProviderPrometheus {
		return f.queryPrometheus(ctx, namespace, p, req)
	}
	run, ok := runners[p.Type]
	if !ok {
		return 0, fmt.Errorf("metric provider type %q is not supported (supported: %v)", p.Type, v1alpha1.ProviderTypes)
	}
	c, err := f.connect(ctx, namespace, p)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p.Type, err)
	}
	v, err := run(ctx, c, req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", p.Type, c.address, c.redact(err))
	}
	return v, nil
}

func (f *Factory) queryPrometheus(ctx context.Context, namespace string, p *v1alpha1.MetricProvider, req Request) (float64, error) {
	if f.Prometheus == nil {
		return 0, prom.ErrNoAddress
	}
	client, err := f.Prometheus.Client(ctx, namespace, p)
	if err != nil {
		return 0, err
	}
	v, err := client.Query(ctx, req.Query, req.End)
	if err != nil {
		return 0, err
	}
	if !v.OK {
		return 0, fmt.Errorf("prometheus %s: %w", client.Address(), ErrNoData)
	}
	return v.V, nil
}

func (f *Factory) transport(insecure bool) *http.Transport {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.transports == nil {
		f.transports = map[bool]*http.Transport{}
	}
	tr, ok := f.transports[insecure]
	if !ok {
		tr = (&egress.Dialer{Policy: f.Egress}).Transport(insecure)
		f.transports[insecure] = tr
	}
	return tr
}
