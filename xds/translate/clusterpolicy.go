package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/serin-dev/serin/xds/model"
)

// lbPolicy is the cluster's policy within a track. Every policy keeps the
// locality-weighted split between the tracks: Envoy picks the locality by
// weight first for round robin, least request and random, and scales each
// host's share of the ring by its locality's weight for ring hash; grpc-go
// does the same (wrr_locality, and locality × endpoint weights for
// ring_hash).
func (t *translator) lbPolicy(c *clusterv3.Cluster) {
	lb := t.r.LoadBalancer
	if lb == nil {
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		return
	}
	var slow *clusterv3.Cluster_SlowStartConfig
	if lb.Warmup > 0 {
		slow = &clusterv3.Cluster_SlowStartConfig{SlowStartWindow: durationpb.New(lb.Warmup)}
	}
	switch lb.Policy {
	case model.LeastRequest:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		if slow != nil {
			c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{SlowStartConfig: slow}}
		}
	case model.Random:
		c.LbPolicy = clusterv3.Cluster_RANDOM
	case model.RingHash:
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		cfg := &clusterv3.Cluster_RingHashLbConfig{HashFunction: clusterv3.Cluster_RingHashLbConfig_XX_HASH}
		if n := lb.Hash.MinimumRingSize; n > 0 {
			cfg.MinimumRingSize = wrapperspb.UInt64(n)
		}
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: cfg}
	default:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		if slow != nil {
			c.LbConfig = &clusterv3.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{SlowStartConfig: slow}}
		}
	}
}

// outlierDetection follows Istio's translation of its outlierDetection:
// success-rate ejection off, each consecutive-error count enforced at 100%
// when above 0 and turned off at 0, unset values at Envoy's defaults
// (which are Istio's: 5 consecutive 5xx, 10s interval, 30s ejection, 10%).
// grpc-go implements only the success-rate and failure-percentage
// algorithms, so it accepts this and ejects nothing.
func (t *translator) outlierDetection() *clusterv3.OutlierDetection {
	od := t.r.OutlierDetection
	if od == nil {
		return nil
	}
	enforce := func(v uint32) *wrapperspb.UInt32Value {
		if v > 0 {
			return wrapperspb.UInt32(100)
		}
		return wrapperspb.UInt32(0)
	}
	out := &clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0)}
	if v := od.Consecutive5xxErrors; v != nil {
		out.Consecutive_5Xx, out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(*v), enforce(*v)
	}
	if v := od.ConsecutiveGatewayErrors; v != nil {
		out.ConsecutiveGatewayFailure, out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(*v), enforce(*v)
	}
	if od.SplitExternalLocalOriginErrors {
		out.SplitExternalLocalOriginErrors = true
		if v := od.ConsecutiveLocalOriginFailures; v != nil && *v > 0 {
			out.ConsecutiveLocalOriginFailure, out.EnforcingConsecutiveLocalOriginFailure = wrapperspb.UInt32(*v), enforce(*v)
		}
		out.EnforcingLocalOriginSuccessRate = wrapperspb.UInt32(0)
	}
	if od.Interval > 0 {
		out.Interval = durationpb.New(od.Interval)
	}
	if od.BaseEjectionTime > 0 {
		out.BaseEjectionTime = durationpb.New(od.BaseEjectionTime)
	}
	if v := od.MaxEjectionPercent; v != nil {
		out.MaxEjectionPercent = wrapperspb.UInt32(*v)
	}
	return out
}

// circuitBreakers are the connection pool's limits at default priority.
// Connections are unlimited, as in Istio when tcp.maxConnections is unset.
func (t *translator) circuitBreakers() *clusterv3.CircuitBreakers {
	cp := t.r.ConnectionPool
	if cp == nil {
		return nil
	}
	u := func(v *uint32) *wrapperspb.UInt32Value {
		if v == nil {
			return wrapperspb.UInt32(^uint32(0))
		}
		return wrapperspb.UInt32(*v)
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     wrapperspb.UInt32(^uint32(0)),
		MaxPendingRequests: u(cp.MaxPendingRequests),
		MaxRequests:        u(cp.MaxRequests),
		MaxRetries:         u(cp.MaxRetries),
	}}}
}

// protocolOptions are the upstream HTTP options: HTTP/2 for gRPC releases
// and for a pool that upgrades, HTTP/1.1 otherwise; and the pool's idle
// timeout and requests per connection. None for a plain HTTP/1.1 release.
func (t *translator) protocolOptions() map[string]*anypb.Any {
	cp := t.r.ConnectionPool
	http2 := t.r.Protocol == model.GRPC || (cp != nil && cp.HTTP2)
	var common *corev3.HttpProtocolOptions
	if cp != nil && (cp.IdleTimeout > 0 || cp.MaxRequestsPerConnection > 0) {
		common = &corev3.HttpProtocolOptions{}
		if cp.IdleTimeout > 0 {
			common.IdleTimeout = durationpb.New(cp.IdleTimeout)
		}
		if cp.MaxRequestsPerConnection > 0 {
			common.MaxRequestsPerConnection = wrapperspb.UInt32(cp.MaxRequestsPerConnection)
		}
	}
	if !http2 && common == nil {
		return nil
	}
	explicit := &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
	}
	if http2 {
		explicit.ProtocolConfig = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}
	}
	return map[string]*anypb.Any{httpProtocolOptionsKey: toAny(&upstreamhttpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: common,
		UpstreamProtocolOptions:   &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: explicit},
	})}
}
