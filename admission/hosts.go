package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// HostOwners reads, through the API server, everything that decides which
// hosts a namespace may claim (v1alpha1.HostOwnership): the namespace's
// Services, the cluster's namespaces and their host grants, and the hosts
// that Gateways, HTTPRoutes, Istio Gateways and VirtualServices claim
// anywhere in the cluster. Kinds whose CRDs are not installed are skipped.
type HostOwners struct {
	Reader client.Reader
	// ClusterDomain defaults to v1alpha1.DefaultClusterDomain.
	ClusterDomain string
}

// claimSource is a kind whose objects claim hosts, and where their hosts are.
type claimSource struct {
	gvk   schema.GroupVersionKind
	claim v1alpha1.ClaimKind
	hosts func(u *unstructured.Unstructured) []string
	// serinWrites marks a kind serin itself writes for Canaries; the
	// objects serin made claim nothing.
	serinWrites bool
}

var claimSources = []claimSource{
	{schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "GatewayList"}, v1alpha1.ClaimGateway, func(u *unstructured.Unstructured) []string {
		return nestedStrings(u.Object, []string{"spec", "listeners"}, []string{"hostname"})
	}, false},
	{schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRouteList"}, v1alpha1.ClaimRoute, func(u *unstructured.Unstructured) []string {
		hs, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "hostnames")
		return hs
	}, false},
	{schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1alpha3", Kind: "GatewayList"}, v1alpha1.ClaimGateway, func(u *unstructured.Unstructured) []string {
		var out []string
		for _, h := range nestedStrings(u.Object, []string{"spec", "servers"}, []string{"hosts"}) {
			// "ns/host" limits which namespaces' VirtualServices may bind;
			// the host is the Gateway's either way.
			_, host, found := strings.Cut(h, "/")
			if !found {
				host = h
			}
			out = append(out, host)
		}
		return out
	}, false},
	{schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1alpha3", Kind: "VirtualServiceList"}, v1alpha1.ClaimRoute, func(u *unstructured.Unstructured) []string {
		hs, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "hosts")
		return hs
	}, true},
}

// Ownership gathers what decides which hosts namespace ns may claim.
func (h *HostOwners) Ownership(ctx context.Context, ns string) (v1alpha1.HostOwnership, error) {
	o := v1alpha1.HostOwnership{Namespace: ns, ClusterDomain: h.ClusterDomain}
	var svcs corev1.ServiceList
	if err := h.Reader.List(ctx, &svcs, client.InNamespace(ns)); err != nil {
		return o, fmt.Errorf("list services in %s: %w", ns, err)
	}
	for _, s := range svcs.Items {
		o.Services = append(o.Services, s.Name)
	}
	var nss corev1.NamespaceList
	if err := h.Reader.List(ctx, &nss); err != nil {
		return o, fmt.Errorf("list namespaces: %w", err)
	}
	for _, n := range nss.Items {
		o.Namespaces = append(o.Namespaces, n.Name)
		v, ok := n.Annotations[v1alpha1.AnnotationHostGrants]
		if !ok {
			continue
		}
		grants, err := v1alpha1.ParseHostGrants(n.Name, v)
		if err != nil {
			// The well-formed entries still count; the rest grant nothing.
			logr.FromContextOrDiscard(ctx).Info("ignoring malformed host grants", "namespace", n.Name, "error", err.Error())
		}
		o.Grants = append(o.Grants, grants...)
	}
	for _, src := range claimSources {
		claims, err := h.claims(ctx, src)
		if err != nil {
			return o, err
		}
		o.Claims = append(o.Claims, claims...)
	}
	slices.Sort(o.Services)
	slices.Sort(o.Namespaces)
	return o, nil
}

// claims lists one kind's objects across the cluster, nothing when its
// CRD is not installed.
func (h *HostOwners) claims(ctx context.Context, src claimSource) ([]v1alpha1.HostClaim, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(src.gvk)
	if err := h.Reader.List(ctx, list); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", src.gvk.GroupKind(), err)
	}
	kind := strings.TrimSuffix(src.gvk.Kind, "List")
	var out []v1alpha1.HostClaim
	for i := range list.Items {
		u := &list.Items[i]
		if src.serinWrites && u.GetLabels()[v1alpha1.LabelManagedBy] == v1alpha1.ManagedByValue {
			// serin writes these from Canaries (Flagger's Istio router):
			// they follow ownership and must never make it.
			continue
		}
		for _, host := range src.hosts(u) {
			out = append(out, v1alpha1.HostClaim{Host: host, Namespace: u.GetNamespace(), Kind: src.claim,
				Source: kind + " " + u.GetNamespace() + "/" + u.GetName(), Created: u.GetCreationTimestamp().Time})
		}
	}
	return out, nil
}

// nestedStrings collects a string or string-slice field (field) from each
// element of the list at path.
func nestedStrings(obj map[string]any, path, field []string) []string {
	items, _, _ := unstructured.NestedSlice(obj, path...)
	var out []string
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		if s, ok, _ := unstructured.NestedString(m, field...); ok && s != "" {
			out = append(out, s)
		}
		if ss, ok, _ := unstructured.NestedStringSlice(m, field...); ok {
			out = append(out, ss...)
		}
	}
	return out
}

// OwnershipReader is what the Canary webhook needs to check hosts.
type OwnershipReader interface {
	Ownership(ctx context.Context, ns string) (v1alpha1.HostOwnership, error)
}

var _ OwnershipReader = (*HostOwners)(nil)

// validateCanary checks a Canary's spec and, with owners, that its
// namespace owns every host it claims. An update that leaves the hosts as
// they were is not re-checked (finalizer and status-adjacent writes must
// not fail because a grant was withdrawn; the traffic controller stops
// serving a host that is no longer owned). Reading ownership fails
// closed: the webhook's failurePolicy is Fail.
func validateCanary(owners OwnershipReader) admission.Handler {
	return HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		var c v1alpha1.Canary
		if err := json.Unmarshal(req.Object.Raw, &c); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode canary: %w", err))
		}
		errs := v1alpha1.ValidateCanary(&c)
		hosts := c.Spec.Service.Hosts
		if owners != nil && len(hosts) > 0 && len(errs) == 0 && !sameHosts(req, hosts) {
			own, err := owners.Ownership(ctx, req.Namespace)
			if err != nil {
				return admission.Errored(http.StatusInternalServerError, fmt.Errorf("check host ownership: %w", err))
			}
			errs = own.Check(hosts, field.NewPath("spec", "service", "hosts"))
		}
		return deny(schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}, c.Name, errs)
	})
}

// sameHosts reports whether an UPDATE keeps the old object's hosts.
func sameHosts(req admission.Request, hosts []string) bool {
	if req.Operation != admissionv1.Update || len(req.OldObject.Raw) == 0 {
		return false
	}
	var old v1alpha1.Canary
	if err := json.Unmarshal(req.OldObject.Raw, &old); err != nil {
		return false
	}
	return slices.Equal(old.Spec.Service.Hosts, hosts)
}
