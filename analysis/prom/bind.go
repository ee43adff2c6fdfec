package prom

import (
	"errors"
	"net/url"
	"strings"
)

// AnnotationAllowedAddresses on a provider Secret lists, comma-separated,
// the Prometheus URLs its credentials may be sent to, e.g.
// "https://prometheus.monitoring:9090". The Secret's "address" key, when
// set, is allowed too.
const AnnotationAllowedAddresses = "serin.dev/allowed-addresses"

// Errors of Bind. They never hold an address or a value of the Secret.
var (
	ErrSecretUnbound = errors.New("the Secret names no address its credentials may go to " +
		"(annotation " + AnnotationAllowedAddresses + " or key " + SecretAddress + ")")
	ErrSecretElsewhere = errors.New("the Secret does not allow its credentials to go to the provider's address")
)

// Bind reports whether the credentials of sec may be sent to address: the
// Secret must name it, by its "address" key or its allowed-addresses
// annotation. Scheme, host and port must be equal (ports default by
// scheme) and the address's path must be within the named path. It is a
// pure function.
func Bind(sec ProviderSecret, address string) error {
	var bound []string
	if a := strings.TrimSpace(string(sec.Data[SecretAddress])); a != "" {
		bound = append(bound, a)
	}
	for _, a := range strings.Split(sec.Annotations[AnnotationAllowedAddresses], ",") {
		if a = strings.TrimSpace(a); a != "" {
			bound = append(bound, a)
		}
	}
	if len(bound) == 0 {
		return ErrSecretUnbound
	}
	dst, ok := origin(address)
	if !ok {
		return ErrSecretElsewhere
	}
	for _, b := range bound {
		if o, ok := origin(b); ok && o.scheme == dst.scheme && o.host == dst.host && within(dst.path, o.path) {
			return nil
		}
	}
	return ErrSecretElsewhere
}

type place struct{ scheme, host, path string }

// origin is a URL's scheme, host:port (port defaulted) and path, without
// userinfo, query string or fragment.
func origin(raw string) (place, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return place{}, false
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return place{scheme: u.Scheme, host: host + ":" + port, path: strings.TrimSuffix(u.EscapedPath(), "/")}, true
}

// within reports whether path p is prefix or below it.
func within(p, prefix string) bool {
	return prefix == "" || p == prefix || strings.HasPrefix(p, prefix+"/")
}
