package traffic

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Every replica of serin serves xDS, and proxies connect to whichever one
// the Service picked. A step is applied only when the proxies of every
// replica applied it, so each replica publishes what its own proxies
// applied in a Lease of its own, and the leader's engine reads them all.
// A replica whose Lease was not renewed within PeerTimeout is gone (its
// proxies reconnect elsewhere) and no longer counts.

// Peer Lease labels and annotation.
const (
	LabelXDSReplica      = "serin.dev/xds-replica"
	AnnotationXDSApplied = "serin.dev/xds-applied"
	// PeerTimeout is how long a replica's report stays valid unrenewed.
	PeerTimeout = 15 * time.Second
	// peerRenew is how often a replica renews an unchanged report.
	peerRenew = 5 * time.Second
)

// PeerEntry is what one replica's proxies applied for one Canary.
type PeerEntry struct {
	// Traffic is the status traffic the replica serves ("w/m/a/revisions").
	Traffic string `json:"t"`
	// Proxies subscribed to the release on that replica.
	Proxies int `json:"p"`
	// Applied is true when all of them ACKed Traffic.
	Applied bool `json:"a,omitempty"`
	// Rejected is a NACK message, if one of them rejected it.
	Rejected string `json:"r,omitempty"`
}

// Peers publishes this replica's report and reads the others'.
type Peers struct {
	Client    client.Client
	Namespace string
	// Identity names this replica (the pod name in a cluster).
	Identity string

	mu      sync.Mutex
	last    map[string]PeerEntry
	renewed time.Time
	// decoded are the other replicas' reports by Lease name, with the
	// resourceVersion they were decoded at: the engine asks for every
	// pending release many times a second, and a report only changes
	// when its Lease does.
	decoded map[string]decodedReport
}

type decodedReport struct {
	version string
	entries map[string]PeerEntry
}

func (p *Peers) leaseName() string { return "serin-xds-" + replicaName(p.Identity) }

// replicaName is a replica's identity as part of an object name.
func replicaName(identity string) string {
	return strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(identity))
}

// Report writes this replica's entries when they changed, or renews them.
func (p *Peers) Report(ctx context.Context, entries map[string]PeerEntry, now time.Time) error {
	p.mu.Lock()
	same := maps.Equal(p.last, entries) && now.Sub(p.renewed) < peerRenew
	p.mu.Unlock()
	if same {
		return nil
	}
	b, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: p.leaseName(), Namespace: p.Namespace}}
	err = p.Client.Get(ctx, client.ObjectKeyFromObject(lease), lease)
	create := apierrors.IsNotFound(err)
	if err != nil && !create {
		return fmt.Errorf("read xds peer lease: %w", err)
	}
	if lease.Labels == nil {
		lease.Labels = map[string]string{}
	}
	lease.Labels[LabelXDSReplica] = "true"
	lease.Labels["app.kubernetes.io/managed-by"] = "serin"
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[AnnotationXDSApplied] = string(b)
	lease.Spec.HolderIdentity = ptr.To(p.Identity)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(PeerTimeout / time.Second))
	lease.Spec.RenewTime = &metav1.MicroTime{Time: now}
	if create {
		err = p.Client.Create(ctx, lease)
	} else {
		err = p.Client.Update(ctx, lease)
	}
	if err != nil {
		return fmt.Errorf("write xds peer lease: %w", err)
	}
	p.mu.Lock()
	p.last, p.renewed = maps.Clone(entries), now
	p.mu.Unlock()
	return nil
}

// Others returns the live reports of the other replicas for key.
func (p *Peers) Others(ctx context.Context, key string, now time.Time) ([]PeerEntry, error) {
	var list coordinationv1.LeaseList
	if err := p.Client.List(ctx, &list, client.InNamespace(p.Namespace), client.MatchingLabels{LabelXDSReplica: "true"}); err != nil {
		return nil, err
	}
	var out []PeerEntry
	defer p.forgetGone(list.Items)
	for _, l := range list.Items {
		if l.Name == p.leaseName() || l.Spec.RenewTime == nil || now.Sub(l.Spec.RenewTime.Time) > PeerTimeout {
			continue
		}
		entries, ok := p.entriesOf(&l)
		if !ok {
			continue
		}
		if e, ok := entries[key]; ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// forgetGone drops the decoded reports of replicas whose Lease is gone.
func (p *Peers) forgetGone(leases []coordinationv1.Lease) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name := range p.decoded {
		if !slices.ContainsFunc(leases, func(l coordinationv1.Lease) bool { return l.Name == name }) {
			delete(p.decoded, name)
		}
	}
}

// entriesOf decodes a replica's report, once per version of its Lease.
func (p *Peers) entriesOf(l *coordinationv1.Lease) (map[string]PeerEntry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, ok := p.decoded[l.Name]; ok && d.version == l.ResourceVersion && l.ResourceVersion != "" {
		return d.entries, true
	}
	var entries map[string]PeerEntry
	if err := json.Unmarshal([]byte(l.Annotations[AnnotationXDSApplied]), &entries); err != nil {
		return nil, false
	}
	if p.decoded == nil {
		p.decoded = map[string]decodedReport{}
	}
	p.decoded[l.Name] = decodedReport{version: l.ResourceVersion, entries: entries}
	return entries, true
}

// Forget deletes this replica's Lease (on a clean shutdown).
func (p *Peers) Forget(ctx context.Context) error {
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: p.leaseName(), Namespace: p.Namespace}}
	return client.IgnoreNotFound(p.Client.Delete(ctx, lease))
}
