// Package build turns a Canary, its target Deployment, the namespace's pods
// and the Service into the traffic model of one release (model.Release).
// It is pure: no client, no clock, no logger; the traffic controller reads
// the objects and hands them in.
package build

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/xds/model"
)

// Input is what a release's traffic is built from.
type Input struct {
	Canary *v1alpha1.Canary `json:"canary"`
	// Target is the Deployment the Canary releases; nil when it is gone.
	Target *appsv1.Deployment `json:"target,omitempty"`
	// Pods are the pods of the Canary's namespace; the builder picks both
	// tracks' pods by the target's selector.
	Pods []corev1.Pod `json:"pods,omitempty"`
	// Services are the Services of the namespace; the released one
	// supplies the cluster IPs Istio's TCP listeners are named by.
	Services []corev1.Service `json:"services,omitempty"`
}

// Tracks are the label selectors of the two sets of pods.
type Tracks struct {
	Stable, Canary map[string]string
}

// TracksOf are the selectors of a Deployment's stable pods and of its
// canary copy's pods.
func TracksOf(d *appsv1.Deployment) Tracks {
	if d == nil || d.Spec.Selector == nil {
		return Tracks{}
	}
	return Tracks{Stable: d.Spec.Selector.MatchLabels, Canary: v1alpha1.CanarySelector(d.Spec.Selector.MatchLabels)}
}

// Release is the model of a Canary's traffic: its effective spec (the
// Canary over the target's annotations), the traffic in its status, and
// the pods of both tracks. It returns nil and no error when the spec names
// no service port yet.
func Release(in Input) (*model.Release, error) {
	spec, _ := v1alpha1.ResolveSpec(in.Canary, in.Target)
	if spec.Service.Port == 0 {
		return nil, nil
	}
	r := base(in.Canary, &spec, service(in.Services, spec.Service.Name))
	addEndpoints(r, &spec, TracksOf(in.Target), in.Pods)
	addRouteFeatures(r, in.Canary.Status, spec.Analysis)
	if err := addPolicies(r, &spec); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("release %s: %w", r.Key(), err)
	}
	return r, nil
}

// ExportToAnnotation is Istio's annotation on a Service that limits the
// namespaces it is visible in; serin serves the Service's release to the
// same namespaces.
const ExportToAnnotation = "networking.istio.io/exportTo"

// base is the release's identity, hosts and the traffic in status.
func base(c *v1alpha1.Canary, spec *v1alpha1.CanarySpec, svc *corev1.Service) *model.Release {
	st := c.Status
	r := &model.Release{
		Namespace:    c.Namespace,
		Service:      spec.Service.Name,
		Port:         uint32(spec.Service.Port),
		Protocol:     protocol(spec.Service.AppProtocol),
		Gateways:     spec.Service.Gateways,
		Delegation:   spec.Service.Delegation,
		GatewayRefs:  parentRefs(spec.Service.GatewayRefs),
		CanaryWeight: uint32(st.CanaryWeight),
		Stable:       model.TrackEndpoints{Revision: st.StableRevision},
		Canary:       model.TrackEndpoints{Revision: st.CanaryRevision},
	}
	if len(spec.Service.Hosts) > 0 {
		r.Hosts = append(r.DefaultHosts(), spec.Service.Hosts...)
		slices.Sort(r.Hosts)
		r.Hosts = slices.Compact(r.Hosts)
	}
	if svc != nil {
		r.ClusterIPs = clusterIPs(svc)
		r.ExportTo = model.ParseExportTo(svc.Annotations[ExportToAnnotation])
	}
	return r
}

// parentRefs are service.gatewayRefs in the model.
func parentRefs(refs []v1alpha1.GatewayRef) []model.ParentRef {
	var out []model.ParentRef
	for _, g := range refs {
		p := model.ParentRef{Group: g.Group, Kind: g.Kind, Name: g.Name, Namespace: g.Namespace, SectionName: g.SectionName}
		if g.Port != nil {
			p.Port = uint32(*g.Port)
		}
		out = append(out, p)
	}
	return out
}

// addEndpoints files each pod under the track whose selector it matches,
// sorted by address.
func addEndpoints(r *model.Release, spec *v1alpha1.CanarySpec, tracks Tracks, pods []corev1.Pod) {
	stableSel := labels.SelectorFromSet(tracks.Stable)
	canarySel := labels.SelectorFromSet(tracks.Canary)
	eps, owned := ownedEndpoints(pods, spec)
	for i := range pods {
		p := &pods[i]
		ep := eps[i]
		if !owned[i] {
			continue
		}
		switch {
		case len(tracks.Canary) > 0 && canarySel.Matches(labels.Set(p.Labels)):
			r.Canary.Endpoints = append(r.Canary.Endpoints, ep)
		case len(tracks.Stable) > 0 && stableSel.Matches(labels.Set(p.Labels)):
			r.Stable.Endpoints = append(r.Stable.Endpoints, ep)
		}
	}
	for _, t := range []*model.TrackEndpoints{&r.Stable, &r.Canary} {
		slices.SortFunc(t.Endpoints, func(a, b model.Endpoint) int {
			return strings.Compare(a.IP+"/"+a.Pod, b.IP+"/"+b.Pod)
		})
	}
}

// ownedEndpoints is each pod's endpoint, and whether it is listed: a pod
// without one is not, and of the pods that report one address (a pod that
// is going away and the new pod that got its IP, as the cache may briefly
// show them) only the one whose address it is: the ready one, else the
// newest, else the first by name. Proxies refuse an update that lists an
// address twice.
func ownedEndpoints(pods []corev1.Pod, spec *v1alpha1.CanarySpec) ([]model.Endpoint, []bool) {
	eps := make([]model.Endpoint, len(pods))
	owned := make([]bool, len(pods))
	owner := map[string]int{}
	for i := range pods {
		ep, ok := endpoint(&pods[i], spec)
		if !ok {
			continue
		}
		eps[i] = ep
		addr := net.JoinHostPort(ep.IP, strconv.FormatUint(uint64(ep.Port), 10))
		j, seen := owner[addr]
		switch {
		case !seen:
			owner[addr], owned[i] = i, true
		case better(&pods[i], ep.Ready, &pods[j], eps[j].Ready):
			owner[addr], owned[i], owned[j] = i, true, false
		}
	}
	return eps, owned
}

// better reports whether pod a (ready or not) should own an address
// rather than pod b.
func better(a *corev1.Pod, aReady bool, b *corev1.Pod, bReady bool) bool {
	switch {
	case aReady != bReady:
		return aReady
	case !a.CreationTimestamp.Equal(&b.CreationTimestamp):
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return a.Name < b.Name
}

// addRouteFeatures switches on what the status asks for: mirroring, A/B
// matches, and sticky sessions while a canary runs.
func addRouteFeatures(r *model.Release, st v1alpha1.CanaryStatus, a *v1alpha1.CanaryAnalysis) {
	if a != nil {
		if st.Mirroring {
			w := a.MirrorWeight
			if w == 0 {
				w = v1alpha1.DefaultMirrorWeight
			}
			r.Mirror = &model.Mirror{Percent: uint32(w)}
		}
		if st.Matching {
			r.Match = requestMatches(r.Port, a.Match)
		}
		// Sticky sessions only while a canary runs: the cookie routes name
		// both tracks' revisions.
		if a.SessionAffinity != nil && st.CanaryRevision != "" && r.Protocol != model.TCP {
			r.SessionAffinity = sessionAffinity(a.SessionAffinity)
		}
	}
}

// addPolicies adds the service's timeouts, retries, rewrites, headers and
// TLS to an HTTP or gRPC release.
func addPolicies(r *model.Release, spec *v1alpha1.CanarySpec) error {
	if r.Protocol != model.TCP {
		svcSpec := spec.Service
		if svcSpec.Timeout != "" {
			d, err := time.ParseDuration(svcSpec.Timeout)
			if err != nil {
				return fmt.Errorf("service.timeout %q: %w", svcSpec.Timeout, err)
			}
			r.Timeout = d
		}
		if rt := svcSpec.Retries; rt != nil && rt.Attempts > 0 {
			r.Retries = &model.Retries{Attempts: uint32(rt.Attempts), RetryOn: rt.RetryOn}
			if rt.PerTryTimeout != "" {
				d, err := time.ParseDuration(rt.PerTryTimeout)
				if err != nil {
					return fmt.Errorf("service.retries.perTryTimeout %q: %w", rt.PerTryTimeout, err)
				}
				r.Retries.PerTryTimeout = d
			}
		}
		if rw := svcSpec.Rewrite; rw != nil && (rw.URI != "" || rw.Authority != "") {
			r.Rewrite = &model.Rewrite{URI: rw.URI, Authority: rw.Authority}
		}
		r.Headers = headers(svcSpec.Headers)
		// Entries for other ports are left out; when none is for this
		// port, the service's routes here are not narrowed.
		r.ServiceMatch = requestMatches(r.Port, svcSpec.Match)
		c, err := cors(svcSpec.CorsPolicy)
		if err != nil {
			return err
		}
		r.CORS = c
	}
	if err := addTrafficPolicy(r, spec.Service.TrafficPolicy); err != nil {
		return err
	}
	if tp := spec.Service.TrafficPolicy; tp != nil && tp.TLS != nil && tp.TLS.Mode == v1alpha1.TLSIstioMutual {
		r.IstioMutualTLS = true
	}
	r.LoadReporting = spec.LoadReports != nil && spec.LoadReports.Enabled
	return nil
}

func protocol(p v1alpha1.AppProtocol) model.Protocol {
	switch strings.ToLower(string(p)) {
	case "grpc", "http2":
		return model.GRPC
	case "tcp":
		return model.TCP
	default:
		return model.HTTP
	}
}

// endpoint is the pod's address for the released port.
func endpoint(p *corev1.Pod, spec *v1alpha1.CanarySpec) (model.Endpoint, bool) {
	if p.Status.PodIP == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return model.Endpoint{}, false
	}
	port := uint32(0)
	tp := spec.Service.TargetPort
	if tp.StrVal != "" {
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == tp.StrVal {
					port = uint32(cp.ContainerPort)
				}
			}
		}
	} else {
		port = uint32(tp.IntVal)
	}
	if port == 0 {
		port = uint32(spec.Service.Port)
	}
	if port == 0 {
		return model.Endpoint{}, false
	}
	ready := p.DeletionTimestamp == nil
	found := false
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			found = true
			ready = ready && cond.Status == corev1.ConditionTrue
		}
	}
	return model.Endpoint{Pod: p.Name, IP: p.Status.PodIP, Port: port, Ready: ready && found}, true
}

func stringMatch(name string, s v1alpha1.StringMatch) model.StringMatch {
	return model.StringMatch{Name: name, Exact: s.Exact, Prefix: s.Prefix, Suffix: s.Suffix, Regex: s.Regex, Present: s.Present}
}

func headers(h *v1alpha1.Headers) *model.Headers {
	if h == nil {
		return nil
	}
	out := &model.Headers{}
	if q := h.Request; q != nil {
		out.RequestAdd = merge(q.Add, q.Set)
		out.RequestRemove = q.Remove
	}
	if q := h.Response; q != nil {
		out.ResponseAdd = merge(q.Add, q.Set)
		out.ResponseRemove = q.Remove
	}
	if len(out.RequestAdd) == 0 && len(out.RequestRemove) == 0 && len(out.ResponseAdd) == 0 && len(out.ResponseRemove) == 0 {
		return nil
	}
	return out
}

func merge(a, b map[string]string) map[string]string {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func service(svcs []corev1.Service, name string) *corev1.Service {
	for i := range svcs {
		if svcs[i].Name == name {
			return &svcs[i]
		}
	}
	return nil
}

func clusterIPs(svc *corev1.Service) []string {
	var out []string
	for _, ip := range svc.Spec.ClusterIPs {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, ip)
		}
	}
	return out
}
