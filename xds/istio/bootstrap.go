package istio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/xds/translate"
)

// xdsCircuitBreak is far above what one proxy opens to serin: every
// cluster fed through an api_config_source holds its own stream, and
// Envoy's default of 1024 concurrent requests must never be what limits
// them (Istio raises it the same way for its own xds-grpc cluster).
const xdsCircuitBreak = 100000

// RenderBootstrapOverride renders the per-namespace ConfigMap of the
// bootstrap-override mode. A pod annotated
// sidecar.istio.io/bootstrapOverride: <its name> (see BootstrapAnnotations)
// starts its Envoy with, merged into Istio's bootstrap:
//
//   - a static cluster (translate.DefaultXDSCluster unless renamed) that
//     reaches serin's xDS service over HTTP/2 and TLS straight to serin
//     (serin's pod does not intercept its xDS port): the client certificate
//     is the pod's Istio workload certificate, from its own agent over
//     SDS, and serin's serving certificate is verified against
//     Options.XDSCABundle with a SAN match on Options.XDSServerName
//     (see serinTLS). It must be static: Envoy refuses an envoy_grpc
//     config source whose cluster came from CDS, so it cannot be added by
//     an EnvoyFilter.
//   - the node metadata of Options.ProxyMetadata, so that serin's
//     EnvoyFilters reach exactly the proxies that have the cluster.
//
// Proxies read it when they start: existing pods pick it up on restart.
func RenderBootstrapOverride(namespace string, opts Options) (*corev1.ConfigMap, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.Translate.Source.Kind != translate.SourceStaticCluster {
		return nil, errors.New("a bootstrap override is only used with translate.SourceStaticCluster")
	}
	host, port, err := o.xdsHostPort()
	if err != nil {
		return nil, err
	}
	connectTimeout := o.Translate.ConnectTimeout
	if connectTimeout == 0 {
		connectTimeout = translate.DefaultConnectTimeout
	}
	cluster := xdsCluster(o.Translate.Source.Cluster, host, port, connectTimeout)
	switch {
	case o.XDSPlaintext:
	case o.XDSCABundle == "":
		return nil, errors.New("xdsCABundle (serin's CA) is required unless xdsPlaintext")
	default:
		serverName := o.XDSServerName
		if serverName == "" {
			serverName = host
		}
		cluster.TransportSocket = serinTLS(o.XDSCABundle, serverName)
	}
	b := &bootstrapv3.Bootstrap{StaticResources: &bootstrapv3.Bootstrap_StaticResources{
		Clusters: []*clusterv3.Cluster{cluster},
	}}
	if len(o.ProxyMetadata) > 0 {
		md := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for k, v := range o.ProxyMetadata {
			md.Fields[k] = structpb.NewStringValue(v)
		}
		b.Node = &corev3.Node{Metadata: md}
	}
	if err := translate.ValidateMessage(b); err != nil {
		return nil, fmt.Errorf("bootstrap override: %w", err)
	}
	data, err := stableJSON(b)
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      o.BootstrapConfigMap,
			Namespace: namespace,
			Labels:    map[string]string{LabelManagedBy: ManagedBy},
		},
		Data: map[string]string{bootstrapDataKey: data},
	}, nil
}

// xdsCluster is the static cluster through which Istio's Envoys reach
// serin: HTTP/2 with keepalives, generous circuit breakers, no TLS yet.
func xdsCluster(name, host string, port uint32, connectTimeout time.Duration) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			// A locality ID and weight keep this load assignment in the
			// shape serin validates every load assignment against (the
			// one grpc-go requires); Envoy ignores both here.
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				Locality:            &corev3.Locality{Region: translate.LocalityRegion},
				LoadBalancingWeight: wrapperspb.UInt32(1),
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
							Address:       host,
							PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
						}}},
					}},
				}}}},
		},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
					ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
							Http2ProtocolOptions: &corev3.Http2ProtocolOptions{
								// Notice a dead serin replica in seconds,
								// not at the next TCP timeout.
								ConnectionKeepalive: &corev3.KeepaliveSettings{
									Interval: durationpb.New(30 * time.Second),
									Timeout:  durationpb.New(10 * time.Second),
								},
							},
						},
					},
				},
			}),
		},
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections:     wrapperspb.UInt32(xdsCircuitBreak),
			MaxPendingRequests: wrapperspb.UInt32(xdsCircuitBreak),
			MaxRequests:        wrapperspb.UInt32(xdsCircuitBreak),
			MaxRetries:         wrapperspb.UInt32(xdsCircuitBreak),
		}}},
	}
}

// serinTLS is the bootstrap cluster's mutual TLS with serin itself: the
// pod's Istio workload certificate (SDS "default", which serin maps to the
// pod's namespace and service account), serin's serving certificate
// checked against serin's CA bundle and its xDS Service name, ALPN h2.
func serinTLS(caBundle, serverName string) *corev3.TransportSocket {
	ctx := &tlsv3.UpstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams: &tlsv3.TlsParameters{
				TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
				TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
			},
			AlpnProtocols:                  []string{"h2"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{translate.IstioWorkloadSDS()},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
				ValidationContext: &tlsv3.CertificateValidationContext{
					TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: caBundle}},
					MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
						SanType: tlsv3.SubjectAltNameMatcher_DNS,
						Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: serverName}},
					}},
				},
			},
		},
		Sni: serverName,
	}
	a, err := anypb.New(ctx)
	if err != nil {
		panic(err)
	}
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a},
	}
}

// BootstrapAnnotations are the pod annotations that make Istio's injector
// mount the bootstrap override.
func BootstrapAnnotations(opts Options) map[string]string {
	name := opts.BootstrapConfigMap
	if name == "" {
		name = DefaultBootstrapConfigMap
	}
	return map[string]string{BootstrapOverrideAn: name}
}

// stableJSON is protojson with its deliberately unstable whitespace taken
// out: keys sorted, two-space indent.
func stableJSON(b *bootstrapv3.Bootstrap) (string, error) {
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return "", err
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	sorted, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, sorted, "", "  "); err != nil {
		return "", err
	}
	return out.String() + "\n", nil
}

func mustAny(m *upstreamhttpv3.HttpProtocolOptions) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}
