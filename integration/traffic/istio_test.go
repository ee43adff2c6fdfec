package traffic

import (
	"context"
	"encoding/json"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
	"github.com/serin-dev/serin/internal/golden"
	"github.com/serin-dev/serin/xds/istio"
	"github.com/serin-dev/serin/xds/model"
	"github.com/serin-dev/serin/xds/translate"
)

// istioCase is one release rendered with one set of Istio options.
type istioCase struct {
	name string
	rel  model.Release
	opts istio.Options
}

// The golden inputs of xds/istio and xds/translate. The translator's own
// options are not used: each of its cases is rendered in both of serin's
// ways of reaching the proxies.
type (
	istioGolden struct {
		Release model.Release `yaml:"release"`
		Options istio.Options `yaml:"options"`
	}
	translateGolden struct {
		Release model.Release     `yaml:"release"`
		Options translate.Options `yaml:"options"`
	}
)

// istioCases are representative releases: the Istio goldens with their own
// options, and every translator golden in both ways of reaching serin.
func istioCases(t *testing.T) []istioCase {
	t.Helper()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var out []istioCase
	istioIn := golden.ReadCases[istioGolden](t, filepath.Join(root, "xds", "istio", "testdata", "in"))
	for _, name := range slices.Sorted(maps.Keys(istioIn)) {
		c := istioIn[name]
		out = append(out, istioCase{name: "istio-" + name, rel: c.Release, opts: c.Options})
	}
	modes := map[string]istio.Options{
		"bootstrap": {Translate: translate.Options{Source: translate.ConfigSource{Kind: translate.SourceStaticCluster}},
			XDSAddress: istioXDSAddress},
		"grpc": {Translate: translate.Options{Source: translate.ConfigSource{Kind: translate.SourceGoogleGRPC, TargetURI: istioXDSAddress}}},
	}
	translateIn := golden.ReadCases[translateGolden](t, filepath.Join(root, "xds", "translate", "testdata", "in"))
	for _, name := range slices.Sorted(maps.Keys(translateIn)) {
		c := translateIn[name]
		if c.Release.Protocol == model.TCP && len(c.Release.ClusterIPs) == 0 {
			// Istio names TCP listeners by the Service's cluster IP;
			// serin reads it from the Service.
			c.Release.ClusterIPs = []string{"10.96.12.34"}
		}
		for _, mode := range []string{"bootstrap", "grpc"} {
			out = append(out, istioCase{name: mode + "-" + name, rel: c.Release, opts: modes[mode]})
		}
	}
	return out
}

// TestIstioEnvoyFilterSchema renders serin's EnvoyFilters for representative
// releases and has the real API server, with Istio's CRDs installed, accept
// them: a server-side dry run, then a real apply, and the stored objects
// read back unchanged (nothing pruned by the CRD schema).
func TestIstioEnvoyFilterSchema(t *testing.T) {
	c := cluster.Get(t)
	harness.InstallIstioCRDs(t, c)
	ns := c.Namespace(t)
	cases := istioCases(t)
	var docs []string
	want := map[string]map[string]any{}
	for _, ic := range cases {
		opts := ic.opts
		opts.Namespace = ns
		efs, err := istio.RenderEnvoyFilters(&ic.rel, opts)
		if err != nil {
			t.Errorf("%s: render: %v", ic.name, err)
			continue
		}
		for _, ef := range efs {
			// Many cases share a release key: prefix the case to keep
			// the objects apart in one namespace.
			ef.Name = trimName(ic.name + "." + ef.Name)
			ef.Namespace = ns // the schema is the point here, not where filters live
			b, err := sigsyaml.Marshal(ef)
			if err != nil {
				t.Fatal(err)
			}
			docs = append(docs, string(b))
			want[ef.Name] = specOf(t, b)
		}
	}
	t.Logf("FIGURE istio_envoyfilters_rendered=%d cases=%d", len(docs), len(cases))
	manifest := strings.Join(docs, "---\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := c.Kubectl(ctx, manifest, "apply", "--dry-run=server", "-f", "-"); err != nil {
		t.Fatalf("server-side dry run refused serin's EnvoyFilters: %v", err)
	} else if n := strings.Count(out, "(server dry run)"); n != len(docs) {
		t.Errorf("dry run accepted %d of %d objects:\n%s", n, len(docs), out)
	}
	if _, err := c.Kubectl(ctx, manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply refused serin's EnvoyFilters: %v", err)
	}
	out, err := c.Kubectl(ctx, "", "get", "envoyfilters.networking.istio.io", "-n", ns, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != len(want) {
		t.Errorf("%d EnvoyFilters stored, %d applied", len(list.Items), len(want))
	}
	for _, it := range list.Items {
		w, ok := want[it.Metadata.Name]
		if !ok {
			t.Errorf("unexpected EnvoyFilter %s", it.Metadata.Name)
			continue
		}
		if !reflect.DeepEqual(w, it.Spec) {
			gb, _ := json.Marshal(it.Spec)
			wb, _ := json.Marshal(w)
			t.Errorf("%s: the API server stored a different spec:\n got %s\nwant %s", it.Metadata.Name, gb, wb)
		}
	}
}

// specOf is the spec of a rendered object, as the API server would return it.
func specOf(t *testing.T, y []byte) map[string]any {
	t.Helper()
	j, err := sigsyaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct{ Spec map[string]any }
	if err := json.Unmarshal(j, &obj); err != nil {
		t.Fatal(err)
	}
	return obj.Spec
}

func trimName(s string) string {
	s = strings.ToLower(s)
	if len(s) > 253 {
		s = s[:253]
	}
	return strings.Trim(s, ".-")
}

// testIstioWriter checks the EnvoyFilters serin itself writes (it runs in
// google_grpc mode): created for a release, with serin's clusters on a
// google_grpc source with mutual TLS, and deleted with the Canary.
func testIstioWriter(t *testing.T, e *env) {
	r := newRelease(t, e, grpcService, `    interval: 1s
    stepWeights: [50]
`)
	rel := model.Release{Namespace: r.ns, Service: "podinfo", Port: 9999}
	hash := istio.ReleaseHash(&rel)
	list := func() []*networkingv1alpha3.EnvoyFilter {
		var l networkingv1alpha3.EnvoyFilterList
		if err := e.kube.List(context.Background(), &l, client.InNamespace(r.ns), client.MatchingLabels{istio.LabelRelease: hash}); err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	var efs []*networkingv1alpha3.EnvoyFilter
	start := time.Now()
	for deadline := time.Now().Add(30 * time.Second); len(efs) == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		efs = list()
	}
	if len(efs) == 0 {
		t.Fatalf("serin wrote no EnvoyFilter for release %s", rel.Key())
	}
	t.Logf("FIGURE istio_writer_envoyfilters=%d", len(efs))
	for _, ef := range efs {
		b, err := json.Marshal(&ef.Spec)
		if err != nil {
			t.Fatal(err)
		}
		spec := string(b)
		if ef.Annotations[istio.AnnotationRelease] != rel.Key() || ef.Name != istio.EnvoyFilterName(&rel) {
			t.Errorf("EnvoyFilter %s: name or release annotation wrong: %v", ef.Name, ef.Annotations)
		}
		// Mutual TLS with serin: serin's CA as the root, the workload
		// certificate Istio's agent writes to files as the client's.
		for _, s := range []string{rel.ClusterName(), `"target_uri":"` + istioXDSAddress + `"`, `"initial_fetch_timeout":"10s"`,
			`"root_certs":{"inline_string":"-----BEGIN CERTIFICATE-----`,
			`"cert_chain":{"filename":"/etc/istio-output-certs/cert-chain.pem"}`,
			`"private_key":{"filename":"/etc/istio-output-certs/key.pem"}`,
			// Only proxies that have those files.
			`"metadata":{"SERIN_XDS":"google-grpc"}`} {
			if !strings.Contains(spec, s) {
				t.Errorf("EnvoyFilter %s does not contain %s: %s", ef.Name, s, spec)
			}
		}
	}
	t.Logf("EnvoyFilter %s written %s after the release was initialized", efs[0].Name, time.Since(start).Round(time.Millisecond))

	r.kubectl("delete", "canary", "podinfo", "--wait=false")
	for deadline := time.Now().Add(30 * time.Second); len(efs) > 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		efs = list()
	}
	if len(efs) > 0 {
		t.Errorf("the EnvoyFilters outlived the Canary: %s", efs[0].Name)
	}
}
