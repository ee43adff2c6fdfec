package traffic

import (
	"context"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/serin-dev/serin/internal/scheme"
)

// TestPeersReadEachOthersReports: a replica reads another's report, sees
// it change when the other writes again, and no longer counts a replica
// whose report went unrenewed.
func TestPeersReadEachOthersReports(t *testing.T) {
	ctx := context.Background()
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	cl := fake.NewClientBuilder().WithScheme(s).Build()
	a := &Peers{Client: cl, Namespace: "serin-system", Identity: "serin-a"}
	b := &Peers{Client: cl, Namespace: "serin-system", Identity: "serin-b"}
	now := time.Now()
	others := func(at time.Time) []PeerEntry {
		t.Helper()
		got, err := a.Others(ctx, "ns/podinfo", at)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if err := b.Report(ctx, map[string]PeerEntry{"ns/podinfo": {Traffic: "20", Proxies: 2}}, now); err != nil {
		t.Fatal(err)
	}
	if got := others(now); len(got) != 1 || got[0].Traffic != "20" || got[0].Applied {
		t.Fatalf("first report: %+v", got)
	}
	if err := b.Report(ctx, map[string]PeerEntry{"ns/podinfo": {Traffic: "20", Proxies: 2, Applied: true}}, now); err != nil {
		t.Fatal(err)
	}
	if got := others(now); len(got) != 1 || !got[0].Applied {
		t.Fatalf("changed report not read: %+v", got)
	}
	if err := a.Report(ctx, map[string]PeerEntry{"ns/podinfo": {Traffic: "0", Proxies: 1}}, now); err != nil {
		t.Fatal(err)
	}
	if got := others(now); len(got) != 1 || got[0].Traffic != "20" {
		t.Fatalf("a replica counts its own report as another's: %+v", got)
	}
	if got := others(now.Add(PeerTimeout + time.Second)); len(got) != 0 {
		t.Fatalf("an unrenewed report still counts: %+v", got)
	}
	if err := b.Forget(ctx); err != nil {
		t.Fatal(err)
	}
	if got := others(now); len(got) != 0 || len(a.decoded) != 0 {
		t.Fatalf("a forgotten replica still counts: %+v (%d decoded)", got, len(a.decoded))
	}
}
