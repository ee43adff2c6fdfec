package translate

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/serin-dev/serin/xds/model"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Names Envoy and Istio know these extensions by.
const (
	httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	tlsTransportSocket     = "envoy.transport_sockets.tls"
	// Istio's node agent serves workload certificates over SDS on this
	// bootstrap cluster, under these two resource names.
	istioSDSCluster    = "sds-grpc"
	istioSDSCertName   = "default"
	istioSDSRootCAName = "ROOTCA"
)

// clusters builds the weighted cluster and the two track clusters. They
// differ only in name: the weights live in the ClusterLoadAssignments, so a
// weight step never touches CDS.
func (t *translator) clusters() []*clusterv3.Cluster {
	// The pieces every cluster shares are built once; the clusters only
	// read them.
	shared := clusterv3.Cluster{
		ConnectTimeout: durationpb.New(t.o.ConnectTimeout),
		CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{
			// Panic mode would send traffic to pods Kubernetes says are not
			// ready as soon as fewer than half are; for a canary that is
			// exactly the wrong moment. 0 turns it off.
			HealthyPanicThreshold: &typev3.Percent{Value: 0},
			LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
				LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{},
			},
		},
	}
	shared.TypedExtensionProtocolOptions = t.protocolOptions()
	shared.OutlierDetection = t.outlierDetection()
	shared.CircuitBreakers = t.circuitBreakers()
	t.lbPolicy(&shared)
	if t.r.LoadReporting {
		// "self": report to the server the cluster came from. This is the
		// only value grpc-go accepts.
		shared.LrsServer = &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Self{Self: &corev3.SelfConfigSource{}},
			ResourceApiVersion:    corev3.ApiVersion_V3,
		}
	}
	if t.r.IstioMutualTLS {
		// Istio's outbound cluster name for the port is the SNI: what an
		// east-west gateway in AUTO_PASSTHROUGH mode routes on.
		sni := fmt.Sprintf("outbound_.%d_._.%s.%s.svc.cluster.local", t.r.Port, t.r.Service, t.r.Namespace)
		shared.TransportSocket = IstioMutualTLS(sni, t.r.Protocol == model.GRPC)
	}

	names := []string{t.r.ClusterName(), t.r.TrackClusterName(v1alpha1.TrackStable), t.r.TrackClusterName(v1alpha1.TrackCanary)}
	out := make([]*clusterv3.Cluster, 0, len(names))
	for _, name := range names {
		c := &clusterv3.Cluster{
			Name:                          name,
			ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:              &clusterv3.Cluster_EdsClusterConfig{EdsConfig: t.source, ServiceName: name},
			ConnectTimeout:                shared.ConnectTimeout,
			LbPolicy:                      shared.LbPolicy,
			LbConfig:                      shared.LbConfig,
			OutlierDetection:              shared.OutlierDetection,
			CircuitBreakers:               shared.CircuitBreakers,
			CommonLbConfig:                shared.CommonLbConfig,
			TypedExtensionProtocolOptions: shared.TypedExtensionProtocolOptions,
			LrsServer:                     shared.LrsServer,
			TransportSocket:               shared.TransportSocket,
		}
		out = append(out, c)
	}
	return out
}

// IstioMutualTLS is the transport socket Istio gives its own outbound
// clusters in ISTIO_MUTUAL mode: the workload certificate and the mesh root
// come from the local agent over SDS, so serin never handles keys. ALPN is
// "istio" (plus "h2" for HTTP/2 upstreams), which Istio's inbound listeners
// accept as mesh mTLS. SANs are not pinned (the model does not know the
// service accounts), which is what Istio itself does when a service has
// none: any identity of the mesh is trusted.
func IstioMutualTLS(sni string, http2 bool) *corev3.TransportSocket {
	alpn := []string{"istio"}
	if http2 {
		alpn = []string{"istio", "h2"}
	}
	ctx := &tlsv3.UpstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams: &tlsv3.TlsParameters{
				TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
				TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
			},
			AlpnProtocols:                  alpn,
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{istioSDS(istioSDSCertName)},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
					ValidationContextSdsSecretConfig: istioSDS(istioSDSRootCAName),
				},
			},
		},
		Sni: sni,
	}
	return &corev3.TransportSocket{
		Name:       tlsTransportSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(ctx)},
	}
}

// IstioWorkloadSDS is the SDS config of the pod's Istio workload
// certificate, as Istio's own clusters name it: a client certificate with
// the pod's SPIFFE identity.
func IstioWorkloadSDS() *tlsv3.SdsSecretConfig { return istioSDS(istioSDSCertName) }

// istioSDS is byte-for-byte the SDS config Istio writes for its own
// clusters, so Envoy shares the secret subscription it already has instead
// of opening another. Istio waits forever (0s) on this source because it is
// the local agent, always there; that is Istio's choice for its own source,
// not one of serin's.
func istioSDS(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{
		Name: name,
		SdsConfig: &corev3.ConfigSource{
			ConfigSourceSpecifier: apiConfigSource(&corev3.GrpcService{
				TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: istioSDSCluster},
				},
			}),
			ResourceApiVersion:  corev3.ApiVersion_V3,
			InitialFetchTimeout: durationpb.New(0),
		},
	}
}
