package app

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestAPIServerRefused: the policies refuse the rest config's host and
// the kubernetes Service, whatever --egress-allow lifts for loopback, and
// metric providers also reach --prometheus-address's host.
func TestAPIServerRefused(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"},
		Spec: corev1.ServiceSpec{ClusterIPs: []string{"10.96.0.1"}, Ports: []corev1.ServicePort{{Port: 443}}}}
	r := fake.NewClientBuilder().WithObjects(svc).Build()
	cfg := &rest.Config{Host: "https://127.0.0.1:6443"}
	got := apiServerAddrs(context.Background(), cfg, r, logr.Discard())
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:6443"), netip.MustParseAddrPort("10.96.0.1:443")}
	if !slices.Equal(got, want) {
		t.Fatalf("apiServerAddrs = %v, want %v", got, want)
	}

	o := controllerOptions{egressAllow: []string{"127.0.0.0/8"}, prometheusAddress: "http://169.254.1.1:9090"}
	p, err := newEgressPolicies(context.Background(), cfg, r, o, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr            string
		calls, promHost bool
	}{
		{"127.0.0.1:6443", false, false},
		{"10.96.0.1:443", false, false},
		{"127.0.0.1:8080", true, true},
		{"169.254.1.1:9090", false, true},
		{"169.254.169.254:80", false, false},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		host := ""
		if ap.Addr() == netip.MustParseAddr("169.254.1.1") {
			host = "169.254.1.1"
		}
		if ok := p.calls.Check(host, ap) == nil; ok != tc.calls {
			t.Errorf("hooks and alerts to %s allowed %v, want %v", tc.addr, ok, tc.calls)
		}
		if ok := p.prometheus.Check(host, ap) == nil; ok != tc.promHost {
			t.Errorf("metric providers to %s allowed %v, want %v", tc.addr, ok, tc.promHost)
		}
	}
	o.egressAllow = []string{"not a host"}
	if _, err := newEgressPolicies(context.Background(), cfg, r, o, logr.Discard()); err == nil {
		t.Error("a bad --egress-allow entry was accepted")
	}
}
