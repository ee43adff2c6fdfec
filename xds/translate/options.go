package translate

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// SourceKind says how a proxy reaches serin for the EDS and RDS resources
// that the generated clusters and listeners refer to.
type SourceKind string

// The config sources serin can point proxies at.
const (
	// SourceADS is the aggregated stream the proxy already has with serin:
	// proxyless gRPC clients and standalone Envoys bootstrapped to serin.
	// grpc-go accepts nothing else.
	SourceADS SourceKind = "ADS"
	// SourceStaticCluster is an api_config_source over envoy_grpc to a
	// cluster that is static in the proxy's bootstrap (Istio's
	// bootstrap-override mode). Envoy refuses envoy_grpc sources whose
	// cluster came from CDS, so the cluster must be in the bootstrap.
	SourceStaticCluster SourceKind = "StaticCluster"
	// SourceGoogleGRPC is an api_config_source over google_grpc with a
	// target URI: no bootstrap cluster needed, so Istio proxies need no
	// restart.
	SourceGoogleGRPC SourceKind = "GoogleGRPC"
)

// DefaultXDSCluster is the bootstrap cluster name of SourceStaticCluster.
const DefaultXDSCluster = "serin-xds"

// Defaults applied by Translate to zero Options fields.
const (
	DefaultInitialFetchTimeout = 10 * time.Second
	DefaultConnectTimeout      = 5 * time.Second
	DefaultListenAddress       = "0.0.0.0"
)

// ConfigSource describes where the generated resources fetch their
// dependent resources from.
type ConfigSource struct {
	// Kind defaults to SourceADS.
	Kind SourceKind `yaml:"kind,omitempty"`
	// Cluster is the static bootstrap cluster for SourceStaticCluster;
	// empty means DefaultXDSCluster.
	Cluster string `yaml:"cluster,omitempty"`
	// TargetURI is serin's gRPC address for SourceGoogleGRPC, e.g.
	// "serin-xds.serin-system.svc:18000".
	TargetURI string `yaml:"targetURI,omitempty"`
	// RootCA (inline PEM) or RootCAFile (a path on the proxy) turns on TLS
	// for SourceGoogleGRPC, trusting serin's own CA. With neither the
	// channel is plaintext.
	RootCA     string `yaml:"rootCA,omitempty"`
	RootCAFile string `yaml:"rootCAFile,omitempty"`
	// ClientCertFile and ClientKeyFile (paths on the proxy, PEM) are the
	// client certificate a SourceGoogleGRPC channel presents to serin,
	// e.g. the Istio workload certificate that Istio's agent writes to
	// files (proxy metadata OUTPUT_CERTS). They go together, and need
	// RootCA or RootCAFile.
	ClientCertFile string `yaml:"clientCertFile,omitempty"`
	ClientKeyFile  string `yaml:"clientKeyFile,omitempty"`
}

// Options are the deployment choices that shape the translated resources.
// The zero value is valid: ADS, proxyless API listeners only.
type Options struct {
	Source ConfigSource `yaml:"source,omitempty"`
	// InitialFetchTimeout bounds how long a proxy waits for the first answer
	// of a config source before it carries on without it. Envoy's 0 means
	// forever (and Istio's own sources use 0); zero here means
	// DefaultInitialFetchTimeout.
	InitialFetchTimeout time.Duration `yaml:"initialFetchTimeout,omitempty"`
	// ConnectTimeout of the generated clusters; zero means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration `yaml:"connectTimeout,omitempty"`
	// SocketListeners adds one listener bound to ListenAddress and the
	// release's port (standalone gateway mode), in addition to the
	// proxyless gRPC API listeners.
	SocketListeners bool `yaml:"socketListeners,omitempty"`
	// ListenAddress of socket listeners; empty means DefaultListenAddress.
	ListenAddress string `yaml:"listenAddress,omitempty"`
}

// withDefaults returns o with its zero fields filled, or an error for
// values no proxy would accept.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Source.Kind == "" {
		o.Source.Kind = SourceADS
	}
	switch o.Source.Kind {
	case SourceADS:
	case SourceStaticCluster:
		if o.Source.Cluster == "" {
			o.Source.Cluster = DefaultXDSCluster
		}
	case SourceGoogleGRPC:
		if o.Source.TargetURI == "" {
			errs = append(errs, errors.New("source.targetURI is required for GoogleGRPC"))
		}
		if o.Source.RootCA != "" && o.Source.RootCAFile != "" {
			errs = append(errs, errors.New("source: set rootCA or rootCAFile, not both"))
		}
		if (o.Source.ClientCertFile == "") != (o.Source.ClientKeyFile == "") {
			errs = append(errs, errors.New("source: clientCertFile and clientKeyFile go together"))
		}
		if o.Source.ClientCertFile != "" && o.Source.RootCA == "" && o.Source.RootCAFile == "" {
			errs = append(errs, errors.New("source: a client certificate needs rootCA or rootCAFile (TLS)"))
		}
	default:
		errs = append(errs, fmt.Errorf("source.kind %q: must be ADS, StaticCluster or GoogleGRPC", o.Source.Kind))
	}
	if o.InitialFetchTimeout < 0 || o.ConnectTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if o.InitialFetchTimeout == 0 {
		o.InitialFetchTimeout = DefaultInitialFetchTimeout
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.ListenAddress == "" {
		o.ListenAddress = DefaultListenAddress
	}
	if _, err := netip.ParseAddr(o.ListenAddress); err != nil {
		errs = append(errs, fmt.Errorf("listenAddress: %w", err))
	}
	return o, errors.Join(errs...)
}

// configSource builds the ConfigSource proto for o.Source. o must have
// been through withDefaults.
func (o Options) configSource() *corev3.ConfigSource {
	cs := &corev3.ConfigSource{
		ResourceApiVersion:  corev3.ApiVersion_V3,
		InitialFetchTimeout: durationpb.New(o.InitialFetchTimeout),
	}
	switch o.Source.Kind {
	case SourceStaticCluster:
		cs.ConfigSourceSpecifier = apiConfigSource(&corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: o.Source.Cluster},
			},
		})
	case SourceGoogleGRPC:
		g := &corev3.GrpcService_GoogleGrpc{
			TargetUri:  o.Source.TargetURI,
			StatPrefix: "serin_xds",
		}
		var root *corev3.DataSource
		switch {
		case o.Source.RootCA != "":
			root = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: o.Source.RootCA}}
		case o.Source.RootCAFile != "":
			root = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: o.Source.RootCAFile}}
		}
		if root != nil {
			ssl := &corev3.GrpcService_GoogleGrpc_SslCredentials{RootCerts: root}
			if o.Source.ClientCertFile != "" {
				ssl.CertChain = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: o.Source.ClientCertFile}}
				ssl.PrivateKey = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: o.Source.ClientKeyFile}}
			}
			g.ChannelCredentials = &corev3.GrpcService_GoogleGrpc_ChannelCredentials{
				CredentialSpecifier: &corev3.GrpcService_GoogleGrpc_ChannelCredentials_SslCredentials{SslCredentials: ssl},
			}
		}
		cs.ConfigSourceSpecifier = apiConfigSource(&corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: g},
		})
	default:
		cs.ConfigSourceSpecifier = &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}
	}
	return cs
}

func apiConfigSource(svc *corev3.GrpcService) *corev3.ConfigSource_ApiConfigSource {
	return &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
		ApiType:                   corev3.ApiConfigSource_GRPC,
		TransportApiVersion:       corev3.ApiVersion_V3,
		GrpcServices:              []*corev3.GrpcService{svc},
		SetNodeOnFirstMessageOnly: true,
	}}
}
