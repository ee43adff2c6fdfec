package install

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/admission"
)

// want describes each of serin's webhooks as every install must render it.
var want = map[string]struct {
	path, group, version, resource string
	mutating                       bool
	failurePolicy                  string // with default values
	condition                      string // a substring of its matchCondition; "" for none
}{
	"hold.deployments.serin.dev":         {admission.PathHoldDeployment, "apps", "v1", "deployments", true, "Ignore", "object.metadata.annotations['serin.dev/canary'] == 'enabled'"},
	"deployments.validate.serin.dev":     {admission.PathValidateDeployment, "apps", "v1", "deployments", false, "Ignore", "k.startsWith('serin.dev/')"},
	"canaries.validate.serin.dev":        {admission.PathValidateCanary, "serin.dev", "v1alpha1", "canaries", false, "Fail", ""},
	"metrictemplates.validate.serin.dev": {admission.PathValidateMetricTemplate, "serin.dev", "v1alpha1", "metrictemplates", false, "Fail", ""},
	"alertproviders.validate.serin.dev":  {admission.PathValidateAlertProvider, "serin.dev", "v1alpha1", "alertproviders", false, "Fail", ""},
	// Pods are seen on CREATE only.
	"config.pods.serin.dev": {admission.PathPodConfig, "", "v1", "pods", true, "Ignore", "'serin.dev/config' in object.metadata.annotations"},
}

// checkWebhooks checks rendered webhooks against want. url is the
// webhook.url value ("" for the Service); ns is serin's namespace.
func checkWebhooks(t *testing.T, got map[string]webhookSpec, ns, url, service string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("webhooks = %v, want %d", slices.Sorted(func(yield func(string) bool) {
			for k := range got {
				if !yield(k) {
					return
				}
			}
		}), len(want))
	}
	for name, w := range want {
		h, ok := got[name]
		if !ok {
			t.Errorf("%s: missing", name)
			continue
		}
		if h.Mutating != w.mutating {
			t.Errorf("%s: mutating = %v", name, h.Mutating)
		}
		ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
		if w.resource == "pods" {
			ops = ops[:1]
		}
		rule := admissionregistrationv1.RuleWithOperations{
			Operations: ops,
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{w.group}, APIVersions: []string{w.version}, Resources: []string{w.resource}},
		}
		if !reflect.DeepEqual(h.Rules, []admissionregistrationv1.RuleWithOperations{rule}) {
			t.Errorf("%s: rules = %+v, want %+v (no subresources)", name, h.Rules, rule)
		}
		if h.FailurePolicy != w.failurePolicy || h.SideEffects != "None" || h.TimeoutSeconds != 3 ||
			!slices.Equal(h.AdmissionReviewVersions, []string{"v1"}) {
			t.Errorf("%s: failurePolicy %s sideEffects %s timeout %d reviews %v", name, h.FailurePolicy, h.SideEffects, h.TimeoutSeconds, h.AdmissionReviewVersions)
		}
		if w.mutating != (h.ReinvocationPolicy == "IfNeeded") {
			t.Errorf("%s: reinvocationPolicy %q", name, h.ReinvocationPolicy)
		}
		switch {
		case w.condition == "" && len(h.MatchConditions) != 0:
			t.Errorf("%s: unexpected matchConditions %v", name, h.MatchConditions)
		case w.condition != "":
			if len(h.MatchConditions) != 1 || !strings.Contains(h.MatchConditions[0].Expression, w.condition) ||
				!strings.HasPrefix(h.MatchConditions[0].Expression, "has(object.metadata.annotations) &&") {
				t.Errorf("%s: matchConditions = %+v", name, h.MatchConditions)
			}
		}
		// Deployments and pods are seen outside the system namespaces and serin's own.
		if w.group == "apps" || w.resource == "pods" {
			for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease", ns} {
				if !strings.Contains(h.NamespaceSelector, "kubernetes.io/metadata.name") || !strings.Contains(h.NamespaceSelector, ns) ||
					!strings.Contains(h.NamespaceSelector, "NotIn") {
					t.Errorf("%s: namespaceSelector %s does not exclude %s", name, h.NamespaceSelector, ns)
				}
			}
		}
		cc := h.ClientConfig
		if len(cc.CABundle) != 0 {
			t.Errorf("%s: caBundle rendered", name)
		}
		if url != "" {
			if cc.Service != nil || deref(cc.URL) != url+w.path {
				t.Errorf("%s: clientConfig = %+v, want url %s", name, cc, url+w.path)
			}
			continue
		}
		if cc.URL != nil || cc.Service == nil || cc.Service.Name != service || cc.Service.Namespace != ns ||
			deref(cc.Service.Path) != w.path || deref(cc.Service.Port) != 443 {
			t.Errorf("%s: clientConfig = %+v, want service %s/%s:443%s", name, cc, ns, service, w.path)
		}
	}
}

func TestChartLint(t *testing.T) {
	helm := tool(t, "helm")
	chart := filepath.Join(repo(t), "charts", "serin")
	for _, set := range [][]string{
		nil,
		{"certificates.mode=certManager"},
		{"controller.enabled=false", "webhook.url=https://127.0.0.1:9443"},
	} {
		args := []string{"lint", "--strict", chart}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		if out, err := run(t.Context(), "", helm, args...); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
	// The schema rejects what the templates cannot render.
	for _, bad := range []string{"webhook.failurePolicy=Sometimes", "certificates.mode=vault", "controller.replica=2", "webhook.url=http://127.0.0.1:9443"} {
		if _, err := run(t.Context(), "", helm, "template", "serin", chart, "--set", bad); err == nil {
			t.Errorf("--set %s rendered", bad)
		}
	}
}

func TestChartDefaults(t *testing.T) {
	objs := decode(t, helmTemplate(t, "serin-system", false))
	checkWebhooks(t, objs.webhooks(t, "serin"), "serin-system", "", "serin-webhook")

	dep := as[appsv1.Deployment](t, objs.get("Deployment", "serin"))
	if deref(dep.Spec.Replicas) != 2 {
		t.Errorf("replicas = %d", deref(dep.Spec.Replicas))
	}
	pod := dep.Spec.Template.Spec
	if pod.SecurityContext == nil || !deref(pod.SecurityContext.RunAsNonRoot) {
		t.Error("pod must run as non-root")
	}
	if a := pod.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		t.Error("no pod anti-affinity")
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || !deref(sc.ReadOnlyRootFilesystem) || deref(sc.AllowPrivilegeEscalation) || !deref(sc.RunAsNonRoot) ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext = %+v", sc)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("probes must use /healthz and /readyz")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("resources missing")
	}
	for _, arg := range []string{"controller", "--webhook-cert-mode=builtin", "--webhook-secret=serin-webhook-tls", "--webhook-service=serin-webhook",
		"--webhook-config-name=serin", "--webhook-port=9443", "--leader-elect=true", "--xds-address=:18000", "--metrics-address=:8080", "--health-address=:8081"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	if objs.get("PodDisruptionBudget", "serin") == nil {
		t.Error("no PodDisruptionBudget")
	}
	if objs.get("Secret", "serin-webhook-tls") == nil {
		t.Error("builtin mode must create the webhook Secret (serin may not create Secrets)")
	}

	ports := map[string][3]any{ // service -> port, targetPort, appProtocol
		"serin-webhook": {443, "webhook", ""}, "serin-xds": {18000, "xds", "grpc"}, "serin-metrics": {8080, "metrics", ""},
	}
	for name, p := range ports {
		svc := as[corev1.Service](t, objs.get("Service", name))
		sp := svc.Spec.Ports[0]
		if int(sp.Port) != p[0] || sp.TargetPort.String() != p[1] || deref(sp.AppProtocol) != p[2] {
			t.Errorf("%s: port %+v", name, sp)
		}
		if !reflect.DeepEqual(svc.Spec.Selector, dep.Spec.Selector.MatchLabels) {
			t.Errorf("%s selects %v, pods are %v", name, svc.Spec.Selector, dep.Spec.Selector.MatchLabels)
		}
	}
	checkLeastPrivilege(t, objs, "serin-system", "serin-webhook-tls")
	if len(objs.kinds("ServiceMonitor")) != 0 {
		t.Error("ServiceMonitor rendered by default")
	}

	// The optional ServiceMonitor scrapes the metrics Service.
	sm := decode(t, helmTemplate(t, "serin-system", false, "serviceMonitor.enabled=true")).get("ServiceMonitor", "serin")
	if sm == nil {
		t.Fatal("no ServiceMonitor")
	}
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	metrics := objs.get("Service", "serin-metrics").GetLabels()
	for k, v := range sel {
		if metrics[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, the metrics Service has %q", k, v, metrics[k])
		}
	}
	if eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints"); len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" {
		t.Errorf("ServiceMonitor endpoints = %v", eps)
	}
}

// checkLeastPrivilege: no wildcards; Secrets only by name in serin's
// namespace (and get in listed namespaces); webhook configurations by name.
func checkLeastPrivilege(t *testing.T, objs objects, ns, secret string) {
	t.Helper()
	cr := as[rbacv1.ClusterRole](t, objs.get("ClusterRole", "serin"))
	for _, r := range cr.Rules {
		if slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") || slices.Contains(r.APIGroups, "*") {
			t.Errorf("wildcard rule %+v", r)
		}
		// Secrets cluster-wide only for config tracking (which the
		// chart's controller.configTracking=false turns off): tracked
		// Secrets are read, and snapshots of them written beside them.
		if slices.Contains(r.Resources, "secrets") && (!configTracked(t, objs) || !slices.Equal(r.Resources, []string{"configmaps", "secrets", "services"})) {
			t.Errorf("ClusterRole grants Secrets: %+v", r)
		}
		if slices.Contains(r.Resources, "mutatingwebhookconfigurations") && !slices.Equal(r.ResourceNames, []string{"serin"}) {
			t.Errorf("webhook configurations not limited by name: %+v", r)
		}
	}
	for _, u := range objs.kinds("Role") {
		for _, r := range as[rbacv1.Role](t, u).Rules {
			if !slices.Contains(r.Resources, "secrets") {
				continue
			}
			switch {
			case u.GetNamespace() == ns && secret != "":
				if !slices.Equal(r.ResourceNames, []string{secret}) || slices.Contains(r.Verbs, "create") || slices.Contains(r.Verbs, "delete") {
					t.Errorf("Role %s/%s: Secret rule %+v, want %s by name", u.GetNamespace(), u.GetName(), r, secret)
				}
			case !slices.Equal(r.Verbs, []string{"get"}):
				t.Errorf("Role %s/%s: Secret rule %+v, want get only", u.GetNamespace(), u.GetName(), r)
			}
		}
	}
}

func TestChartURLMode(t *testing.T) {
	const url = "https://127.0.0.1:9443"
	objs := decode(t, helmTemplate(t, "dev", false, "controller.enabled=false", "webhook.url="+url+"/"))
	checkWebhooks(t, objs.webhooks(t, "serin"), "dev", url, "")
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor"} {
		if len(objs.kinds(kind)) != 0 {
			t.Errorf("controller.enabled=false rendered a %s", kind)
		}
	}
	if objs.get("Secret", "serin-webhook-tls") == nil || objs.get("ClusterRole", "serin") == nil {
		t.Error("URL mode still needs the Secret and RBAC")
	}
}

func TestChartCertManagerMode(t *testing.T) {
	objs := decode(t, helmTemplate(t, "serin-system", false, "certificates.mode=certManager", "webhook.ips={10.0.0.1}"))
	checkWebhooks(t, objs.webhooks(t, "serin"), "serin-system", "", "serin-webhook")
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		if got := objs.get(kind, "serin").GetAnnotations()["cert-manager.io/inject-ca-from"]; got != "serin-system/serin-webhook" {
			t.Errorf("%s inject-ca-from = %q", kind, got)
		}
	}
	// selfsigned Issuer -> CA Certificate -> CA Issuer -> serving Certificate.
	self := objs.get("Issuer", "serin-selfsigned")
	ca := objs.get("Certificate", "serin-ca")
	caIssuer := objs.get("Issuer", "serin-ca")
	serving := objs.get("Certificate", "serin-webhook")
	if self == nil || ca == nil || caIssuer == nil || serving == nil {
		t.Fatal("cert-manager chain incomplete")
	}
	str := func(u map[string]any, path ...string) string {
		for _, p := range path[:len(path)-1] {
			u, _ = u[p].(map[string]any)
		}
		s, _ := u[path[len(path)-1]].(string)
		return s
	}
	if _, ok := self.Object["spec"].(map[string]any)["selfSigned"]; !ok {
		t.Error("first Issuer is not selfSigned")
	}
	if ca.Object["spec"].(map[string]any)["isCA"] != true || str(ca.Object, "spec", "issuerRef", "name") != "serin-selfsigned" {
		t.Errorf("CA Certificate: %v", ca.Object["spec"])
	}
	if str(caIssuer.Object, "spec", "ca", "secretName") != str(ca.Object, "spec", "secretName") {
		t.Error("CA Issuer does not use the CA Certificate's Secret")
	}
	if str(serving.Object, "spec", "issuerRef", "name") != "serin-ca" || str(serving.Object, "spec", "secretName") != "serin-webhook-tls" {
		t.Errorf("serving Certificate: %v", serving.Object["spec"])
	}
	if !reflect.DeepEqual(serving.Object["spec"].(map[string]any)["ipAddresses"], []any{"10.0.0.1"}) ||
		!slices.Contains(serving.Object["spec"].(map[string]any)["dnsNames"].([]any), any("serin-webhook.serin-system.svc")) {
		t.Errorf("serving Certificate names: %v", serving.Object["spec"])
	}

	dep := as[appsv1.Deployment](t, objs.get("Deployment", "serin"))
	c := dep.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--webhook-cert-mode=dir") || !slices.Contains(c.Args, "--webhook-cert-dir=/var/run/serin/webhook-certs") {
		t.Errorf("args = %v", c.Args)
	}
	mounted := false
	for _, v := range dep.Spec.Template.Spec.Volumes {
		mounted = mounted || (v.Secret != nil && v.Secret.SecretName == "serin-webhook-tls")
	}
	if !mounted {
		t.Error("the cert-manager Secret is not mounted")
	}
	if objs.get("Secret", "serin-webhook-tls") != nil {
		t.Error("cert-manager mode must not render the Secret cert-manager writes")
	}
	checkLeastPrivilege(t, objs, "serin-system", "")

	// An issuer of one's own replaces the chain.
	own := decode(t, helmTemplate(t, "serin-system", false, "certificates.mode=certManager",
		"certificates.certManager.issuerRef.name=corp-ca", "certificates.certManager.issuerRef.kind=ClusterIssuer"))
	if len(own.kinds("Issuer")) != 0 || len(own.kinds("Certificate")) != 1 ||
		str(own.get("Certificate", "serin-webhook").Object, "spec", "issuerRef", "kind") != "ClusterIssuer" {
		t.Error("issuerRef must replace the self-signed chain")
	}
}

func TestChartSecretNamespaces(t *testing.T) {
	objs := decode(t, helmTemplate(t, "serin-system", false, "secretNamespaces={team-a,team-b}"))
	for _, ns := range []string{"team-a", "team-b"} {
		var found bool
		for _, u := range objs.kinds("Role") {
			found = found || (u.GetNamespace() == ns && u.GetName() == "serin-secrets")
		}
		var bound bool
		for _, u := range objs.kinds("RoleBinding") {
			rb := as[rbacv1.RoleBinding](t, u)
			bound = bound || (rb.Namespace == ns && rb.RoleRef.Name == "serin-secrets" && rb.Subjects[0].Namespace == "serin-system")
		}
		if !found || !bound {
			t.Errorf("%s: Role %v, RoleBinding %v", ns, found, bound)
		}
	}
	checkLeastPrivilege(t, objs, "serin-system", "serin-webhook-tls")
}

// TestChartMatchesGenerated: the chart's webhooks, CRDs and RBAC agree with
// what controller-gen generates from the Go markers.
func TestChartMatchesGenerated(t *testing.T) {
	chart := decode(t, helmTemplate(t, "serin-system", false))
	gen := readObjects(t, "manifests/webhook/manifests.yaml").webhooks(t, "")
	got := chart.webhooks(t, "serin")
	if len(gen) != len(got) {
		t.Errorf("controller-gen has %d webhooks, the chart %d", len(gen), len(got))
	}
	for name, g := range gen {
		c, ok := got[name]
		if !ok {
			t.Errorf("%s: generated but not in the chart", name)
			continue
		}
		if g.path() != c.path() || !reflect.DeepEqual(g.Rules, c.Rules) || g.FailurePolicy != c.FailurePolicy || g.SideEffects != c.SideEffects ||
			g.TimeoutSeconds != c.TimeoutSeconds || g.ReinvocationPolicy != c.ReinvocationPolicy || g.Mutating != c.Mutating ||
			!slices.Equal(g.AdmissionReviewVersions, c.AdmissionReviewVersions) {
			t.Errorf("%s differs:\ngenerated %+v\nchart     %+v", name, g, c)
		}
	}

	// CRDs are copied verbatim by hack/sync-chart.sh.
	files, _ := filepath.Glob(filepath.Join(repo(t), "manifests", "crd", "*_*.yaml"))
	if len(files) != 3 {
		t.Errorf("CRD files: %v", files)
	}
	for _, f := range files {
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join(repo(t), "charts", "serin", "crds", filepath.Base(f)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("charts/serin/crds/%s differs from manifests/crd (run make generate): %v", filepath.Base(f), err)
		}
	}

	// RBAC: the chart's ClusterRole rules are the markers', and its Role in
	// serin's namespace grants what the generated Role does.
	genRBAC := readObjects(t, "manifests/rbac/role.yaml")
	if g, c := as[rbacv1.ClusterRole](t, genRBAC.get("ClusterRole", "serin")).Rules, as[rbacv1.ClusterRole](t, chart.get("ClusterRole", "serin")).Rules; !reflect.DeepEqual(g, c) {
		t.Errorf("ClusterRole rules differ from the +kubebuilder:rbac markers:\ngenerated %+v\nchart     %+v", g, c)
	}
	if g, c := as[rbacv1.Role](t, genRBAC.get("Role", "serin")).Rules, as[rbacv1.Role](t, chart.get("Role", "serin")).Rules; !sameRules(g, c) {
		t.Errorf("Role rules differ from the markers:\ngenerated %+v\nchart     %+v", g, c)
	}
}

// sameRules compares rule sets regardless of order.
func sameRules(a, b []rbacv1.PolicyRule) bool {
	key := func(r rbacv1.PolicyRule) string { return r.String() }
	ka, kb := make([]string, 0, len(a)), make([]string, 0, len(b))
	for _, r := range a {
		ka = append(ka, key(r))
	}
	for _, r := range b {
		kb = append(kb, key(r))
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// TestChartSchemaCoversValues: every key of values.yaml is described in
// values.schema.json (free-form maps such as resources excepted), so a
// typo in a value fails instead of being ignored.
func TestChartSchemaCoversValues(t *testing.T) {
	var values map[string]any
	raw, err := os.ReadFile(filepath.Join(repo(t), "charts", "serin", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	raw, err = os.ReadFile(filepath.Join(repo(t), "charts", "serin", "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	defs, _ := schema["definitions"].(map[string]any)
	resolve := func(n map[string]any) map[string]any {
		if ref, ok := n["$ref"].(string); ok {
			d, _ := defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
			return d
		}
		return n
	}
	var walk func(path string, v map[string]any, n map[string]any)
	walk = func(path string, v map[string]any, n map[string]any) {
		props, ok := n["properties"].(map[string]any)
		if !ok {
			return // a free-form object
		}
		if n["additionalProperties"] != false {
			t.Errorf("%s: the schema allows unknown keys", path)
		}
		for k, val := range v {
			p, ok := props[k].(map[string]any)
			if !ok {
				t.Errorf("%s.%s: not in values.schema.json", path, k)
				continue
			}
			if m, ok := val.(map[string]any); ok {
				walk(path+"."+k, m, resolve(p))
			}
		}
	}
	walk("", values, schema)
}

// configTracked reports whether the rendered serin tracks config.
func configTracked(t *testing.T, objs objects) bool {
	t.Helper()
	dep := as[appsv1.Deployment](t, objs.get("Deployment", "serin"))
	return !slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "--config-tracking=false")
}

// TestChartConfigTrackingOff: without config tracking serin has no pod
// webhook and no access to ConfigMaps, Secrets (but its own) or pods'
// deletion.
func TestChartConfigTrackingOff(t *testing.T) {
	objs := decode(t, helmTemplate(t, "serin-system", false, "controller.configTracking=false"))
	if _, ok := objs.webhooks(t, "serin")["config.pods.serin.dev"]; ok {
		t.Error("config.pods.serin.dev rendered with config tracking off")
	}
	if configTracked(t, objs) {
		t.Error("--config-tracking=false not passed")
	}
	for _, r := range as[rbacv1.ClusterRole](t, objs.get("ClusterRole", "serin")).Rules {
		if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "configmaps") ||
			(slices.Contains(r.Resources, "pods") && slices.Contains(r.Verbs, "delete")) {
			t.Errorf("ClusterRole grants %+v with config tracking off", r)
		}
	}
	checkLeastPrivilege(t, objs, "serin-system", "serin-webhook-tls")
}
