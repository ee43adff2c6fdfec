package v1alpha1

// Router is what carries a release's traffic split to the data plane.
type Router string

const (
	// RouterXDS is serin's own xDS server: proxyless gRPC clients and
	// Istio's Envoys (through the EnvoyFilters serin writes).
	RouterXDS Router = "xds"
	// RouterGatewayAPI is a Gateway API route serin writes: an HTTPRoute
	// (GRPCRoute for gRPC ports, TCPRoute for TCP ones) whose parents are
	// service.gatewayRefs, or the apex Service itself (GAMMA) when none
	// are given.
	RouterGatewayAPI Router = "gatewayapi"
	// RouterSMI is an SMI TrafficSplit (split.smi-spec.io/v1alpha2), which
	// Linkerd reads through its SMI extension.
	RouterSMI Router = "smi"
)

// Values of spec.provider that choose a router.
const (
	ProviderIstio          Provider = "istio"
	ProviderKubernetes     Provider = "kubernetes"
	ProviderGatewayAPI     Provider = "gatewayapi:v1"
	ProviderGatewayAPIBeta Provider = "gatewayapi:v1beta1"
	ProviderLinkerd        Provider = "linkerd"
	ProviderSMIv1alpha2    Provider = "smi:v1alpha2"
)

// RouterFor is the router of a Canary whose spec.provider is p, with def
// the install default (--mesh-provider) for an empty p. Providers serin
// does not route through run on its own xDS server.
func RouterFor(p, def Provider) Router {
	if p == "" {
		p = def
	}
	switch p {
	case ProviderGatewayAPI, ProviderGatewayAPIBeta:
		return RouterGatewayAPI
	case ProviderLinkerd, ProviderSMIv1alpha2:
		return RouterSMI
	}
	return RouterXDS
}
