package istio

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"

	"github.com/serin-dev/serin/xds/translate"
)

// Defaults applied to zero Options fields.
const (
	// DefaultNamespace is Istio's default root namespace: EnvoyFilters
	// there apply to every proxy of the mesh.
	DefaultNamespace = "istio-system"
	// DefaultBootstrapConfigMap is the ConfigMap a pod names in its
	// sidecar.istio.io/bootstrapOverride annotation.
	DefaultBootstrapConfigMap = "serin-xds-bootstrap"
	// ProxyMetadataKey/BootstrapProxyMetadata mark, in node metadata, the
	// proxies that carry serin's bootstrap cluster (see Options).
	ProxyMetadataKey       = "SERIN_XDS"
	BootstrapProxyMetadata = "bootstrap"
	// GoogleGRPCProxyMetadata marks, in google-grpc mode with mutual TLS,
	// the proxies whose agent writes the workload certificate files that
	// serin's google_grpc channels present (serin's pod webhook sets both).
	GoogleGRPCProxyMetadata = "google-grpc"
)

// Labels and annotations on everything this package renders.
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	ManagedBy           = "serin"
	LabelRelease        = "serin.dev/release"     // hash of the release key
	AnnotationRelease   = "serin.dev/release-key" // the key itself, <ns>/<svc>/<port>
	BootstrapOverrideAn = "sidecar.istio.io/bootstrapOverride"
	bootstrapDataKey    = "custom_bootstrap.json"
)

// Options say how Istio's proxies reach serin and where the rendered
// objects live.
type Options struct {
	// Translate shapes the spliced-in resources. Its Source must be
	// translate.SourceStaticCluster (bootstrap-override mode) or
	// translate.SourceGoogleGRPC: Istio's proxies have no ADS stream to
	// serin.
	Translate translate.Options `yaml:"translate"`
	// Namespace is Istio's root namespace, where the gateway patches go
	// (and the sidecar patches with MeshWideSidecars); empty means
	// DefaultNamespace.
	Namespace string `yaml:"namespace,omitempty"`
	// MeshWideSidecars puts the sidecar patches in the root namespace, so
	// that clients in every namespace take part in the release, instead of
	// the release's namespace (its own clients only). The patches touch
	// only names of the release's own Service, but a patch Envoy rejects
	// then reaches every proxy of the mesh.
	MeshWideSidecars bool `yaml:"meshWideSidecars,omitempty"`
	// ProxyMetadata limits every patch to proxies whose node metadata has
	// these entries. In bootstrap-override mode it defaults to
	// {SERIN_XDS: bootstrap}, which RenderBootstrapOverride writes into
	// the node metadata next to the serin-xds cluster: a proxy without
	// that cluster would reject every cluster pointing at it, and with it
	// the whole CDS update. Nil otherwise (every proxy).
	ProxyMetadata map[string]string `yaml:"proxyMetadata,omitempty"`
	// XDSAddress is serin's xDS service as host:port, e.g.
	// "serin-xds.serin-system.svc.cluster.local:18000" (bootstrap-override
	// mode only).
	XDSAddress string `yaml:"xdsAddress,omitempty"`
	// XDSCABundle is serin's CA bundle (PEM) with which the bootstrap
	// cluster verifies serin's serving certificate (bootstrap-override
	// mode; required unless XDSPlaintext). It is inlined: proxies read it
	// when they start, and serin keeps a retiring CA in its bundle long
	// enough for that.
	XDSCABundle string `yaml:"xdsCABundle,omitempty"`
	// XDSServerName is the DNS name serin's serving certificate must carry
	// (SAN match and SNI): serin's xDS Service,
	// <service>.<namespace>.svc. Empty means the host of XDSAddress.
	XDSServerName string `yaml:"xdsServerName,omitempty"`
	// XDSPlaintext reaches serin without TLS, for a serin that serves xDS
	// with --xds-plaintext (bootstrap-override mode).
	XDSPlaintext bool `yaml:"xdsPlaintext,omitempty"`
	// BootstrapConfigMap names the bootstrap-override ConfigMap; empty
	// means DefaultBootstrapConfigMap.
	BootstrapConfigMap string `yaml:"bootstrapConfigMap,omitempty"`
}

func (o Options) withDefaults() (Options, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.BootstrapConfigMap == "" {
		o.BootstrapConfigMap = DefaultBootstrapConfigMap
	}
	switch o.Translate.Source.Kind {
	case translate.SourceStaticCluster:
		if o.Translate.Source.Cluster == "" {
			o.Translate.Source.Cluster = translate.DefaultXDSCluster
		}
		if o.ProxyMetadata == nil {
			o.ProxyMetadata = map[string]string{ProxyMetadataKey: BootstrapProxyMetadata}
		}
	case translate.SourceGoogleGRPC:
	default:
		return o, fmt.Errorf("translate.source.kind %q: Istio's proxies need StaticCluster or GoogleGRPC", o.Translate.Source.Kind)
	}
	o.ProxyMetadata = maps.Clone(o.ProxyMetadata)
	return o, nil
}

// xdsHostPort splits XDSAddress.
func (o Options) xdsHostPort() (string, uint32, error) {
	if o.XDSAddress == "" {
		return "", 0, errors.New("xdsAddress is required")
	}
	host, port, err := net.SplitHostPort(o.XDSAddress)
	if err != nil {
		return "", 0, fmt.Errorf("xdsAddress: %w", err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("xdsAddress %q: bad port", o.XDSAddress)
	}
	return host, uint32(p), nil
}
