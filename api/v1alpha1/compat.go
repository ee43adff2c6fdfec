package v1alpha1

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// FieldStatus is what serin makes of one field of Flagger's schema.
type FieldStatus struct {
	// Honoured is true when serin acts on the field as Flagger documents
	// it (or, for a parent object, when its children say).
	Honoured bool
	// HonouredValues, when set, limits Honoured to these values of a
	// string field; any other value is ignored for Reason.
	HonouredValues []string
	// Reason says why serin ignores the field (or the other values).
	Reason string
}

// FieldNote is a field set in an object that serin accepts and ignores.
type FieldNote struct {
	// Path is the field's path in Flagger's notation, with [] for list
	// items (spec.service.match[].authority).
	Path string
	// Value is the value of a string field ignored for its value.
	Value string
	// Reason says why serin ignores it.
	Reason string
}

// String reads "spec.provider=nginx: serin routes ...".
func (n FieldNote) String() string {
	if n.Value != "" {
		return fmt.Sprintf("%s=%s: %s", n.Path, n.Value, n.Reason)
	}
	return n.Path + ": " + n.Reason
}

var honoured = FieldStatus{Honoured: true}

func ignored(reason string) FieldStatus { return FieldStatus{Reason: reason} }

// Reasons shared by several fields.
const (
	whyRouter     = "serin routes through its own xDS server (and Istio's sidecars), not through %s"
	whyTLS        = "serin serves trafficPolicy.tls.mode DISABLE and ISTIO_MUTUAL only, which take no certificates"
	whyPrimaryHPA = "serin makes no primary autoscaler: the stable pods are your Deployment, scaled by your own HPA or ScaledObject, whose replicas and queries serin never changes: set them there"
	whyAppMesh    = "App Mesh is not a serin router"
	whyMatch      = "selects the client proxies or gateways a route applies to, and serin's routes apply to every proxy that receives the release"
	whyLocality   = "serin's clusters use localities for the split between stable and canary, not for zones"
)

// withPrefix gives every path the same status.
func withPrefix(prefix string, st FieldStatus, suffixes ...string) map[string]FieldStatus {
	out := map[string]FieldStatus{prefix: st}
	for _, s := range suffixes {
		out[prefix+s] = st
	}
	return out
}

// Compat is every field path of Flagger's flagger.app/v1beta1 Canary,
// MetricTemplate and AlertProvider, prefixed with the plural resource
// name ("canaries:spec.service.hosts[]"), and what serin makes of it.
var Compat = buildCompat()

func buildCompat() map[string]FieldStatus {
	out := map[string]FieldStatus{}
	for kind, parts := range map[string][]map[string]FieldStatus{
		"canaries":        {canaryTop(), canaryService(), canaryMatch(), canaryTrafficPolicy(), canaryAnalysis()},
		"metrictemplates": {metricTemplateFields()},
		"alertproviders":  {alertProviderFields()},
	} {
		for _, part := range parts {
			for path, st := range part {
				out[kind+":"+path] = st
			}
		}
	}
	return out
}

func canaryTop() map[string]FieldStatus {
	m := map[string]FieldStatus{
		"spec.provider": {HonouredValues: []string{"istio", "kubernetes", "gatewayapi:v1", "gatewayapi:v1beta1", "linkerd", "smi:v1alpha2"},
			Reason: "serin routes through its own xDS server (and Istio's sidecars), Gateway API routes or SMI TrafficSplits, and this provider is none of them"},
		"spec.metricsServer":                      honoured,
		"spec.progressDeadlineSeconds":            honoured,
		"spec.targetRef":                          honoured,
		"spec.targetRef.apiVersion":               honoured,
		"spec.targetRef.kind":                     honoured,
		"spec.targetRef.name":                     honoured,
		"spec.autoscalerRef":                      honoured,
		"spec.autoscalerRef.apiVersion":           honoured,
		"spec.autoscalerRef.kind":                 honoured,
		"spec.autoscalerRef.name":                 honoured,
		"spec.autoscalerRef.primaryScalerQueries": ignored(whyPrimaryHPA),
		"spec.skipAnalysis":                       honoured,
		"spec.revertOnDeletion":                   honoured,
		"spec.suspend":                            honoured,
	}
	add := func(parts ...map[string]FieldStatus) {
		for _, p := range parts {
			for k, v := range p {
				m[k] = v
			}
		}
	}
	add(withPrefix("spec.autoscalerRef.primaryScalerReplicas", ignored(whyPrimaryHPA), ".minReplicas", ".maxReplicas"),
		withPrefix("spec.ingressRef", ignored(fmt.Sprintf(whyRouter, "an Ingress controller")), ".apiVersion", ".kind", ".name"),
		withPrefix("spec.routeRef", ignored(fmt.Sprintf(whyRouter, "APISIX")), ".apiVersion", ".kind", ".name"),
		withPrefix("spec.upstreamRef", ignored(fmt.Sprintf(whyRouter, "Gloo")), ".apiVersion", ".kind", ".name", ".namespace"))
	return m
}

func canaryService() map[string]FieldStatus {
	m := map[string]FieldStatus{
		"spec.service":                     honoured,
		"spec.service.name":                honoured,
		"spec.service.port":                honoured,
		"spec.service.portName":            honoured,
		"spec.service.appProtocol":         honoured,
		"spec.service.targetPort":          honoured,
		"spec.service.trafficDistribution": honoured,
		"spec.service.portDiscovery":       honoured,
		"spec.service.headless":            honoured,
		"spec.service.timeout":             honoured,
		"spec.service.backendTimeout":      ignored("a Gateway API field: serin applies service.timeout"),
		"spec.service.meshName":            ignored(whyAppMesh),
		"spec.service.backends[]":          ignored(whyAppMesh),
		"spec.service.hosts[]":             honoured,
		"spec.service.gateways[]":          honoured,
		"spec.service.delegation":          honoured,
		"spec.service.corsPolicy":          honoured,
	}
	for _, part := range []map[string]FieldStatus{
		withPrefix("spec.service.retries", honoured, ".attempts", ".perTryTimeout", ".retryOn"),
		withPrefix("spec.service.rewrite", honoured, ".uri", ".authority"),
		{"spec.service.rewrite.type": ignored("a Gateway API field: serin rewrites the path prefix as Istio does")},
		withPrefix("spec.service.mirror[]", ignored("Gateway API mirror backends: serin mirrors to the canary only (analysis.mirror)"),
			".backendRef", ".backendRef.group", ".backendRef.kind", ".backendRef.name", ".backendRef.namespace", ".backendRef.port"),
		withPrefix("spec.service.headers", honoured, ".request", ".request.add", ".request.remove[]", ".request.set",
			".response", ".response.add", ".response.remove[]", ".response.set"),
		withPrefix("spec.service.gatewayRefs[]", honoured,
			".group", ".kind", ".name", ".namespace", ".sectionName", ".port"),
		withPrefix("spec.service.corsPolicy", honoured, ".allowCredentials", ".allowHeaders[]", ".allowMethods[]",
			".allowOrigin[]", ".allowOrigins[]", ".allowOrigins[].exact", ".allowOrigins[].prefix", ".allowOrigins[].regex",
			".exposeHeaders[]", ".maxAge"),
		withPrefix("spec.service.apex", honoured, ".labels", ".annotations"),
		withPrefix("spec.service.unmanagedMetadata", honoured, ".labels[]", ".annotations[]"),
		withPrefix("spec.service.primary", honoured, ".labels", ".annotations"),
		withPrefix("spec.service.canary", honoured, ".labels", ".annotations"),
	} {
		for k, v := range part {
			m[k] = v
		}
	}
	return m
}

func canaryMatch() map[string]FieldStatus {
	p := "spec.service.match[]"
	m := map[string]FieldStatus{p: honoured, p + ".headers": honoured, p + ".queryParams": honoured,
		p + ".ignoreUriCase": honoured, p + ".port": honoured, p + ".withoutHeaders": honoured,
		p + ".name":       ignored("only labels Istio's routes in access logs, and the routes serin narrows by a service match keep serin's names"),
		p + ".gateways[]": ignored(whyMatch), p + ".sourceLabels": ignored(whyMatch), p + ".sourceNamespace": ignored(whyMatch)}
	for _, sm := range []string{"uri", "method", "authority", "scheme"} {
		for k, v := range withPrefix(p+"."+sm, honoured, ".exact", ".prefix", ".regex") {
			m[k] = v
		}
	}
	return m
}

func canaryTrafficPolicy() map[string]FieldStatus {
	p := "spec.service.trafficPolicy"
	m := map[string]FieldStatus{p: honoured, p + ".tls": honoured,
		p + ".tls.mode": {HonouredValues: []string{string(TLSDisable), string(TLSIstioMutual)}, Reason: whyTLS}}
	for k, v := range withPrefix(p+".tls", ignored(whyTLS), ".caCertificates", ".clientCertificate", ".privateKey", ".sni", ".subjectAltNames[]") {
		m[k] = v
	}
	m[p+".tls"] = honoured
	for _, part := range []map[string]FieldStatus{
		withPrefix(p+".connectionPool", honoured, ".http", ".http.h2UpgradePolicy", ".http.http1MaxPendingRequests",
			".http.http2MaxRequests", ".http.idleTimeout", ".http.maxRequestsPerConnection", ".http.maxRetries"),
		withPrefix(p+".loadBalancer", honoured, ".consistentHash", ".consistentHash.httpCookie",
			".consistentHash.httpCookie.name", ".consistentHash.httpCookie.path", ".consistentHash.httpCookie.ttl",
			".consistentHash.httpHeaderName", ".consistentHash.httpQueryParameterName", ".consistentHash.minimumRingSize",
			".consistentHash.useSourceIp"),
		withPrefix(p+".loadBalancer.localityLbSetting", ignored(whyLocality), ".distribute[]", ".distribute[].from",
			".distribute[].to", ".enabled", ".failover[]", ".failover[].from", ".failover[].to"),
		{p + ".loadBalancer.simple": {HonouredValues: []string{"ROUND_ROBIN", "LEAST_CONN", "LEAST_REQUEST", "RANDOM"},
			Reason: "the original destination would bypass the split between stable and canary, so serin keeps round robin"},
			p + ".loadBalancer.warmupDurationSecs": honoured},
		withPrefix(p+".outlierDetection", honoured, ".baseEjectionTime", ".consecutive5xxErrors",
			".consecutiveErrors", ".consecutiveGatewayErrors", ".consecutiveLocalOriginFailures", ".interval",
			".maxEjectionPercent", ".splitExternalLocalOriginErrors"),
		{p + ".outlierDetection.minHealthPercent": ignored("serin keeps panic routing off (healthy_panic_threshold 0) so that pods Kubernetes says are not ready never take traffic")},
	} {
		for k, v := range part {
			m[k] = v
		}
	}
	return m
}

func canaryAnalysis() map[string]FieldStatus {
	p := "spec.analysis"
	m := map[string]FieldStatus{}
	for _, f := range []string{"", ".interval", ".iterations", ".threshold", ".maxWeight", ".stepWeight", ".stepWeights[]",
		".stepWeightPromotion", ".mirror", ".mirrorWeight", ".match[]", ".match[].headers", ".match[].queryParams",
		".metrics[]", ".metrics[].name", ".metrics[].interval", ".metrics[].threshold", ".metrics[].thresholdRange",
		".metrics[].thresholdRange.min", ".metrics[].thresholdRange.max", ".metrics[].templateRef",
		".metrics[].templateRef.name", ".metrics[].templateRef.namespace", ".metrics[].templateVariables",
		".alerts[]", ".alerts[].name", ".alerts[].severity", ".alerts[].providerRef", ".alerts[].providerRef.name",
		".alerts[].providerRef.namespace", ".webhooks[]", ".webhooks[].name", ".webhooks[].type", ".webhooks[].muteAlert",
		".webhooks[].url", ".webhooks[].timeout", ".webhooks[].retries", ".webhooks[].metadata",
		".sessionAffinity", ".sessionAffinity.cookieName", ".sessionAffinity.maxAge", ".sessionAffinity.primaryCookieName",
		".sessionAffinity.domain", ".sessionAffinity.httpOnly", ".sessionAffinity.partitioned", ".sessionAffinity.path",
		".sessionAffinity.sameSite", ".sessionAffinity.secure"} {
		m[p+f] = honoured
	}
	m[p+".primaryReadyThreshold"], m[p+".canaryReadyThreshold"] = honoured, honoured
	m[p+".match[].sourceLabels"] = ignored(whyMatch)
	m[p+".metrics[].query"] = honoured
	m[p+".webhooks[].disableTLS"] = ignored("serin always verifies the TLS certificate of a hook's URL")
	return m
}

func metricTemplateFields() map[string]FieldStatus {
	return map[string]FieldStatus{
		"spec.provider": honoured,
		"spec.provider.type": {HonouredValues: providerTypeNames(),
			Reason: "rejected at admission: serin has no client for this provider"},
		"spec.provider.address":            honoured,
		"spec.provider.headers":            honoured,
		"spec.provider.secretRef":          honoured,
		"spec.provider.secretRef.name":     honoured,
		"spec.provider.region":             honoured,
		"spec.provider.insecureSkipVerify": honoured,
		"spec.query":                       honoured,
	}
}

func providerTypeNames() []string {
	out := make([]string, len(ProviderTypes))
	for i, t := range ProviderTypes {
		out[i] = string(t)
	}
	return out
}

func alertProviderFields() map[string]FieldStatus {
	return map[string]FieldStatus{
		"spec.type":           honoured,
		"spec.channel":        honoured,
		"spec.username":       honoured,
		"spec.address":        honoured,
		"spec.proxy":          ignored("serin calls alert providers directly, or through the proxy of its environment (HTTPS_PROXY)"),
		"spec.secretRef":      honoured,
		"spec.secretRef.name": honoured,
	}
}

// parents are the paths of Compat that have children in it: the walk
// descends into these only (a map such as match[].headers is a leaf).
var parents = func() map[string]bool {
	out := map[string]bool{}
	for path := range Compat {
		for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
			out[path[:i]] = true
		}
	}
	return out
}()

// Ignored lists the fields set in a Canary's spec that serin accepts and
// ignores, sorted by path, one note per path.
func Ignored(s *CanarySpec) []FieldNote { return ignoredIn("canaries", s) }

// IgnoredMetricTemplate lists the fields set in a MetricTemplate's spec
// that serin accepts and ignores.
func IgnoredMetricTemplate(s *MetricTemplateSpec) []FieldNote { return ignoredIn("metrictemplates", s) }

// IgnoredAlertProvider lists the fields set in an AlertProvider's spec
// that serin accepts and ignores.
func IgnoredAlertProvider(s *AlertProviderSpec) []FieldNote { return ignoredIn("alertproviders", s) }

// ignoredIn walks the JSON form of spec (zero values are omitted there)
// against Compat.
func ignoredIn(kind string, spec any) []FieldNote {
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil
	}
	var tree any
	if json.Unmarshal(raw, &tree) != nil {
		return nil
	}
	seen := map[string]FieldNote{}
	walkCompat(kind+":spec", tree, seen)
	out := make([]FieldNote, 0, len(seen))
	for _, n := range seen {
		n.Path = strings.TrimPrefix(n.Path, kind+":")
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path+out[i].Value < out[j].Path+out[j].Value })
	return out
}

func walkCompat(path string, v any, seen map[string]FieldNote) {
	if list, ok := v.([]any); ok {
		path += "[]"
		for _, item := range list {
			walkCompat(path, item, seen)
		}
		if len(list) > 0 {
			noteIfIgnored(path, nil, seen)
		}
		return
	}
	if noteIfIgnored(path, v, seen) {
		return
	}
	obj, ok := v.(map[string]any)
	if !ok || !parents[path] {
		return
	}
	for k, child := range obj {
		walkCompat(path+"."+k, child, seen)
	}
}

// noteIfIgnored records path when serin ignores it (with value v), and
// reports whether it did.
func noteIfIgnored(path string, v any, seen map[string]FieldNote) bool {
	st, known := Compat[path]
	if !known {
		return false
	}
	if len(st.HonouredValues) > 0 {
		s, isString := v.(string)
		if !isString || slices.Contains(st.HonouredValues, s) {
			return false
		}
		seen[path+"="+s] = FieldNote{Path: path, Value: s, Reason: st.Reason}
		return true
	}
	if st.Honoured {
		return false
	}
	seen[path] = FieldNote{Path: path, Reason: st.Reason}
	return true
}

// CompatMarkdown is the table of Compat as Markdown rows, by kind and
// path: what docs/flagger-compat.md shows.
func CompatMarkdown() string {
	keys := make([]string, 0, len(Compat))
	for k := range Compat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("| kind | field | serin |\n|---|---|---|\n")
	for _, k := range keys {
		kind, path, _ := strings.Cut(k, ":")
		st := Compat[k]
		status := "honoured"
		switch {
		case len(st.HonouredValues) > 0:
			status = fmt.Sprintf("honoured for %s; other values ignored: %s", strings.Join(st.HonouredValues, ", "), st.Reason)
		case !st.Honoured:
			status = "ignored: " + st.Reason
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s |\n", kind, path, strings.ReplaceAll(status, "|", "\\|"))
	}
	return b.String()
}
