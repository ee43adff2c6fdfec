package cluster

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestServiceCIDRFor(t *testing.T) {
	for pod, want := range map[string]string{
		"127.1.0.0/16":   "127.240.16.0/20",
		"127.20.0.0/16":  "127.241.64.0/20",
		"127.219.0.0/16": "127.253.176.0/20",
		"127.0.0.0/16":   "127.240.0.0/20",
	} {
		if got, err := ServiceCIDRFor(pod); err != nil || got != want {
			t.Errorf("ServiceCIDRFor(%s) = %s, %v; want %s", pod, got, err, want)
		}
	}
	// Every pod range a cluster may lock gets a range of its own, inside
	// 127.240.0.0/12 and so outside every pod range.
	seen := map[string]int{}
	for n := range 240 {
		got, err := ServiceCIDRFor(fmt.Sprintf("127.%d.0.0/16", n))
		if err != nil {
			t.Fatal(err)
		}
		p := netip.MustParsePrefix(got)
		if !serviceRanges.Contains(p.Addr()) || p.Bits() != 20 {
			t.Errorf("127.%d.0.0/16: service range %s is not a /20 of %s", n, got, serviceRanges)
		}
		if m, dup := seen[got]; dup {
			t.Errorf("127.%d.0.0/16 and 127.%d.0.0/16 share the service range %s", m, n, got)
		}
		seen[got] = n
	}
	for _, bad := range []string{"10.1.0.0/16", "nonsense", "::1/128"} {
		if _, err := ServiceCIDRFor(bad); err == nil {
			t.Errorf("ServiceCIDRFor(%s): no error", bad)
		}
	}
}
