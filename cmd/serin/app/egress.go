package app

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/analysis/prom"
	"github.com/serin-dev/serin/internal/egress"
)

// egressPolicies are the policies of serin's outbound calls: hooks and
// alerts get the admin's allow list (--egress-allow); metric providers
// also reach the host of --prometheus-address, which the admin named.
type egressPolicies struct {
	calls, prometheus egress.Policy
}

// newEgressPolicies reads --egress-allow and adds the API server's
// addresses: the rest config's host and the kubernetes Service (read
// with r; when that fails, the host alone, and a log line says so).
func newEgressPolicies(ctx context.Context, cfg *rest.Config, r client.Reader, o controllerOptions, log logr.Logger) (egressPolicies, error) {
	calls, err := egress.ParseAllow(o.egressAllow)
	if err != nil {
		return egressPolicies{}, fmt.Errorf("--egress-allow: %w", err)
	}
	promAllow := o.egressAllow
	if u, err := url.Parse(o.prometheusAddress); err == nil && u.Hostname() != "" {
		promAllow = append(append([]string(nil), o.egressAllow...), u.Hostname())
	}
	forProm, err := egress.ParseAllow(promAllow)
	if err != nil {
		return egressPolicies{}, fmt.Errorf("--prometheus-address: %w", err)
	}
	api := apiServerAddrs(ctx, cfg, r, log)
	log.Info("egress policy", "allow", o.egressAllow, "apiServer", api)
	return egressPolicies{calls: calls.WithAPIServer(api...), prometheus: forProm.WithAPIServer(api...)}, nil
}

// apiServerAddrs are the addresses the API server is reached at from
// here: the rest config's host (resolved) and the kubernetes Service's
// cluster IPs and ports.
func apiServerAddrs(ctx context.Context, cfg *rest.Config, r client.Reader, log logr.Logger) []netip.AddrPort {
	var out []netip.AddrPort
	if u, err := url.Parse(cfg.Host); err == nil && u.Hostname() != "" {
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80"}[u.Scheme]
			if port == "" {
				port = "443"
			}
		}
		out = append(out, resolve(ctx, u.Hostname(), port, log)...)
	}
	var svc corev1.Service
	if err := r.Get(ctx, types.NamespacedName{Namespace: "default", Name: "kubernetes"}, &svc); err != nil {
		log.Info("kubernetes Service not read; the API server is refused at its configured host only", "error", err.Error())
		return out
	}
	for _, ip := range svc.Spec.ClusterIPs {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			continue
		}
		for _, p := range svc.Spec.Ports {
			out = append(out, netip.AddrPortFrom(a, uint16(p.Port)))
		}
	}
	return out
}

func resolve(ctx context.Context, host, port string, log logr.Logger) []netip.AddrPort {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(a, uint16(p))}
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		log.Info("API server host not resolved", "host", host, "error", err.Error())
		return nil
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip, uint16(p)))
	}
	return out
}

// ProviderSecret reads a metric provider's Secret with a direct GET.
func (r reader) ProviderSecret(ctx context.Context, namespace, name string) (prom.ProviderSecret, error) {
	var s corev1.Secret
	if err := r.direct.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s); err != nil {
		return prom.ProviderSecret{}, fmt.Errorf("read secret %s/%s: %w", namespace, name, err)
	}
	return prom.ProviderSecret{Data: s.Data, Annotations: s.Annotations}, nil
}
