// Package egress is the one guard on serin's outbound HTTP calls to
// addresses its users choose: webhook hooks, alert providers and metric
// providers. The policy is checked when a connection is made, on the
// address the name resolved to, so a name that resolves differently later
// (DNS rebinding) cannot slip past a check done earlier.
//
// Refused unless an admin allows them:
//
//   - loopback (127.0.0.0/8, ::1), link-local (169.254.0.0/16, fe80::/10,
//     with the cloud metadata address 169.254.169.254), unspecified,
//     "this network" (0.0.0.0/8), broadcast and multicast addresses, and
//     the IPv6 and other metadata addresses (fd00:ec2::254,
//     100.100.100.200);
//   - the Kubernetes API server: the addresses of the rest config's host
//     and of the kubernetes Service.
//
// IPv4-mapped and NAT64 (64:ff9b::/96) IPv6 addresses are judged by the
// IPv4 address they carry. Private ranges (10.0.0.0/8 and the like) stay
// allowed: in-cluster Services live there.
//
// An allow entry is a CIDR or IP, which lifts the class refusals for the
// addresses it covers, or a host name ("prometheus.monitoring",
// "*.svc.cluster.local"), which lifts them for whatever that name
// resolves to. The API server stays refused unless an entry names its IP
// exactly. The clients never follow redirects and never use a proxy (the
// guard could not see where a proxy connects).
package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ErrRefused is the error every refusal wraps.
var ErrRefused = errors.New("address not allowed")

// RefusedError says which address was refused and why. Its text names the
// address; the status-safe wording is the class ("address not allowed").
type RefusedError struct {
	Host   string
	Addr   netip.AddrPort
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: %s is %s", ErrRefused, e.Addr, e.Reason)
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Policy decides which addresses outbound calls may reach. The zero Policy
// refuses the default classes and allows everything else. Build it with
// ParseAllow and add the API server with WithAPIServer.
type Policy struct {
	allowPrefixes []netip.Prefix
	allowIPs      []netip.Addr
	allowHosts    []string
	apiServer     []netip.AddrPort
}

// ParseAllow reads allow entries: CIDRs, IPs and host names ("*.suffix"
// for any subdomain of suffix). Empty entries are skipped.
func ParseAllow(entries []string) (Policy, error) {
	var p Policy
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "":
		case strings.Contains(e, "/"):
			pfx, err := netip.ParsePrefix(e)
			if err != nil {
				return Policy{}, fmt.Errorf("egress allow entry %q: %w", e, err)
			}
			pfx = pfx.Masked()
			p.allowPrefixes = append(p.allowPrefixes, pfx)
			if pfx.IsSingleIP() {
				p.allowIPs = append(p.allowIPs, canonical(pfx.Addr()))
			}
		default:
			if ip, err := netip.ParseAddr(e); err == nil {
				ip = canonical(ip)
				p.allowPrefixes = append(p.allowPrefixes, netip.PrefixFrom(ip, ip.BitLen()))
				p.allowIPs = append(p.allowIPs, ip)
				continue
			}
			if !validHost(e) {
				return Policy{}, fmt.Errorf("egress allow entry %q is not a CIDR, an IP or a host name", e)
			}
			p.allowHosts = append(p.allowHosts, e)
		}
	}
	return p, nil
}

// WithAPIServer returns p refusing the API server's addresses too. For an
// address on loopback only its port is refused (a local cluster shares
// 127.0.0.1 with everything else); elsewhere the whole IP is.
func (p Policy) WithAPIServer(addrs ...netip.AddrPort) Policy {
	out := p
	out.apiServer = slices.Clone(p.apiServer)
	for _, a := range addrs {
		if a.Addr().IsValid() {
			out.apiServer = append(out.apiServer, netip.AddrPortFrom(canonical(a.Addr()), a.Port()))
		}
	}
	return out
}

// Check reports whether a connection to addr, reached by resolving host
// (the name in the URL; empty when unknown), is allowed. It returns nil or
// a *RefusedError. It is a pure function.
func (p Policy) Check(host string, addr netip.AddrPort) error {
	ip := canonical(addr.Addr())
	refuse := func(reason string) error {
		return &RefusedError{Host: host, Addr: netip.AddrPortFrom(ip, addr.Port()), Reason: reason}
	}
	if !ip.IsValid() {
		return refuse("not an IP address")
	}
	if p.isAPIServer(ip, addr.Port()) && !slices.Contains(p.allowIPs, ip) {
		return refuse("the Kubernetes API server")
	}
	reason := class(ip)
	if reason == "" || p.hostAllowed(host) {
		return nil
	}
	for _, pfx := range p.allowPrefixes {
		if pfx.Contains(ip) {
			return nil
		}
	}
	return refuse(reason)
}

func (p Policy) isAPIServer(ip netip.Addr, port uint16) bool {
	for _, a := range p.apiServer {
		if a.Addr() == ip && (!ip.IsLoopback() || a.Port() == port) {
			return true
		}
	}
	return false
}

func (p Policy) hostAllowed(host string) bool {
	return host != "" && MatchHost(p.allowHosts, host)
}

// MatchHost reports whether host matches one of patterns: an exact name
// (case-insensitive) or "*.suffix" for any subdomain of suffix.
func MatchHost(patterns []string, host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, pat := range patterns {
		pat = strings.ToLower(strings.TrimSpace(pat))
		switch {
		case pat == host:
			return true
		case strings.HasPrefix(pat, "*.") && strings.HasSuffix(host, pat[1:]):
			return true
		}
	}
	return false
}

// metadata are cloud metadata addresses outside the link-local range.
var metadata = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	broadcast   = netip.MustParseAddr("255.255.255.255")
)

// class names the refused class ip belongs to, or "" when it is allowed
// by default.
func class(ip netip.Addr) string {
	switch {
	case slices.Contains(metadata, ip):
		return "a cloud metadata address"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsUnspecified() || thisNetwork.Contains(ip):
		return "unspecified"
	case ip.IsMulticast() || ip == broadcast:
		return "multicast or broadcast"
	}
	return ""
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// canonical unmaps IPv4-mapped and NAT64 addresses to the IPv4 address
// they carry and drops zones.
func canonical(ip netip.Addr) netip.Addr {
	ip = ip.WithZone("")
	if nat64.Contains(ip) {
		b := ip.As16()
		return netip.AddrFrom4([4]byte(b[12:16]))
	}
	return ip.Unmap()
}

func validHost(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	return h != "" && !strings.ContainsAny(h, ":/@ *?#")
}
