package istio

import (
	"slices"
	"testing"

	"github.com/serin-dev/serin/xds/model"
)

func TestRenderVirtualService(t *testing.T) {
	base := model.Release{Namespace: "test", Service: "podinfo", Port: 9898, Protocol: model.HTTP}

	if vs := RenderVirtualService(&base); vs != nil {
		t.Errorf("a release without gateways got a VirtualService: %v", vs)
	}
	tcp := base
	tcp.Protocol, tcp.Gateways = model.TCP, []string{"istio-system/public-gateway"}
	if vs := RenderVirtualService(&tcp); vs != nil {
		t.Errorf("a TCP release got a VirtualService: %v", vs)
	}

	gw := base
	gw.Hosts, gw.Gateways = []string{"b.example.com", "a.example.com"}, []string{"istio-system/public-gateway"}
	vs := RenderVirtualService(&gw)
	if vs == nil || vs.Name != "podinfo" || vs.Namespace != "test" {
		t.Fatalf("VirtualService %v, want test/podinfo", vs)
	}
	if vs.Labels[LabelManagedBy] != ManagedBy || vs.Labels[LabelRelease] != ReleaseHash(&gw) {
		t.Errorf("labels %v", vs.Labels)
	}
	if !slices.Equal(vs.Spec.Hosts, []string{"a.example.com", "b.example.com"}) || !slices.Equal(vs.Spec.Gateways, gw.Gateways) {
		t.Errorf("hosts %v gateways %v", vs.Spec.Hosts, vs.Spec.Gateways)
	}
	if len(vs.Spec.Http) != 1 || len(vs.Spec.Http[0].Route) != 1 ||
		vs.Spec.Http[0].Route[0].Destination.Host != "podinfo.test.svc.cluster.local" || vs.Spec.Http[0].Route[0].Destination.Port.Number != 9898 {
		t.Errorf("route %v, want podinfo.test.svc.cluster.local:9898", vs.Spec.Http)
	}

	del := gw
	del.Delegation = true
	vs = RenderVirtualService(&del)
	if vs == nil || len(vs.Spec.Hosts) != 0 || len(vs.Spec.Gateways) != 0 || len(vs.Spec.Http) != 1 {
		t.Errorf("delegate %v: want no hosts, no gateways, one route", vs)
	}
	onlyDel := base
	onlyDel.Delegation = true
	if RenderVirtualService(&onlyDel) == nil {
		t.Error("a delegate without gateways got no VirtualService")
	}
}
