package traffic

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// HostOwners says which hosts a namespace may claim; admission.HostOwners
// implements it.
type HostOwners interface {
	Ownership(ctx context.Context, ns string) (v1alpha1.HostOwnership, error)
}

// hostCheck is the last ownership decision for a Canary's hosts.
type hostCheck struct {
	key              string // generation and hosts it was made for
	allowed, denied  []string
	conditionWritten bool
}

// ownedHosts returns c with only the hosts its namespace owns, checking
// again whenever the Canary's generation or hosts change (and on start,
// which covers Canaries admitted before the admission check existed).
// Denied hosts are reported once per decision in an event and in the
// HostsOwned condition; they are never published.
func (x *Controller) ownedHosts(ctx context.Context, c *v1alpha1.Canary) (*v1alpha1.Canary, error) {
	hosts := c.Spec.Service.Hosts
	if x.Hosts == nil {
		return c, nil
	}
	if len(hosts) == 0 {
		// No hosts, nothing denied: clear a condition left from before.
		if apimeta.IsStatusConditionFalse(c.Status.Conditions, v1alpha1.ConditionHostsOwned) {
			return c, x.reportHosts(ctx, c, &hostCheck{})
		}
		return c, nil
	}
	name := client.ObjectKeyFromObject(c)
	key := fmt.Sprintf("%d/%s", c.Generation, strings.Join(hosts, ","))
	x.mu.Lock()
	hc, ok := x.hostChecks[name]
	x.mu.Unlock()
	if !ok || hc.key != key {
		own, err := x.Hosts.Ownership(ctx, c.Namespace)
		if err != nil {
			return nil, fmt.Errorf("check host ownership: %w", err)
		}
		hc = &hostCheck{key: key}
		hc.allowed, hc.denied = own.Allowed(hosts)
		x.mu.Lock()
		x.hostChecks[name] = hc
		x.mu.Unlock()
	}
	x.mu.Lock()
	report := !hc.conditionWritten
	x.mu.Unlock()
	if report {
		if err := x.reportHosts(ctx, c, hc); err != nil {
			return nil, err
		}
		x.mu.Lock()
		hc.conditionWritten = true
		x.mu.Unlock()
	}
	if len(hc.denied) == 0 {
		return c, nil
	}
	out := c.DeepCopy()
	out.Spec.Service.Hosts = slices.Clone(hc.allowed)
	return out, nil
}

// reportHosts sets the HostsOwned condition (when hosts are denied or the
// condition says they were) and records an event for denied hosts.
func (x *Controller) reportHosts(ctx context.Context, c *v1alpha1.Canary, hc *hostCheck) error {
	cond := metav1.Condition{Type: v1alpha1.ConditionHostsOwned, Status: metav1.ConditionTrue, Reason: "Owned",
		Message: "the namespace owns every host in spec.service.hosts", ObservedGeneration: c.Generation}
	if len(hc.denied) > 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, "NotOwned"
		cond.Message = fmt.Sprintf("hosts %q are not owned by namespace %q and are not served; "+
			"route them from a Gateway or route in %q, or ask their owner for a grant (annotation %s)",
			hc.denied, c.Namespace, c.Namespace, v1alpha1.AnnotationHostGrants)
		logr.FromContextOrDiscard(ctx).Info("not serving hosts the namespace does not own", "canary", client.ObjectKeyFromObject(c), "hosts", hc.denied)
		if x.Recorder != nil {
			x.Recorder.Eventf(c, nil, corev1.EventTypeWarning, "HostsNotOwned", "Publish", "%s", cond.Message)
		}
	}
	old := apimeta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionHostsOwned)
	if (old == nil && len(hc.denied) == 0) || (old != nil && old.Status == cond.Status && old.Message == cond.Message) {
		return nil
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur v1alpha1.Canary
		if err := x.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: c.Name}, &cur); err != nil {
			return client.IgnoreNotFound(err)
		}
		apimeta.SetStatusCondition(&cur.Status.Conditions, cond)
		return x.Client.Status().Update(ctx, &cur)
	})
}
