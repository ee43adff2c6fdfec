package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/serin-dev/serin/integration/cluster"
)

// repo is the repository root.
func repo(t testing.TB) string {
	t.Helper()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// tool is the path of a binary from bin/ (or $SERIN_BIN_DIR); the test is
// skipped when it has not been built (make tools).
func tool(t testing.TB, name string) string {
	t.Helper()
	dir, err := cluster.DefaultBinDir()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not built (make tools): %v", name, err)
	}
	return p
}

// run runs a command and returns its stdout; stderr goes into the error.
func run(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return cluster.Run(ctx, stdin, name, args...)
}

// helmTemplate renders the chart as release "serin" in namespace ns with
// --set values.
func helmTemplate(t testing.TB, ns string, crds bool, set ...string) string {
	t.Helper()
	args := []string{"template", "serin", filepath.Join(repo(t), "charts", "serin"), "--namespace", ns}
	if crds {
		args = append(args, "--include-crds")
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := run(context.Background(), "", tool(t, "helm"), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kustomize builds a kustomization directory with kubectl's kustomize.
func kustomize(t testing.TB, dir string) string {
	t.Helper()
	out, err := run(context.Background(), "", tool(t, "kubectl"), "kustomize", filepath.Join(repo(t), dir))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// objects decodes a multi-document YAML stream.
type objects []*unstructured.Unstructured

func decode(t testing.TB, stream string) objects {
	t.Helper()
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	var out objects
	for {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decode: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

func readObjects(t testing.TB, path string) objects {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo(t), path))
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, string(b))
}

// get returns the object of that kind and name, or nil.
func (o objects) get(kind, name string) *unstructured.Unstructured {
	for _, u := range o {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	return nil
}

func (o objects) kinds(kind string) objects {
	var out objects
	for _, u := range o {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// as converts an object to a typed one.
func as[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	if u == nil {
		t.Fatalf("missing %T", *new(T))
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatalf("convert %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

// webhookSpec is the part of a webhook the installs must agree on.
type webhookSpec struct {
	Mutating                bool
	ClientConfig            admissionregistrationv1.WebhookClientConfig
	Rules                   []admissionregistrationv1.RuleWithOperations
	MatchConditions         []admissionregistrationv1.MatchCondition
	NamespaceSelector       string
	FailurePolicy           string
	SideEffects             string
	TimeoutSeconds          int32
	ReinvocationPolicy      string
	AdmissionReviewVersions []string
}

// webhooks are the webhooks of the configurations called name (any name
// when empty), by webhook name.
func (o objects) webhooks(t testing.TB, name string) map[string]webhookSpec {
	t.Helper()
	out := map[string]webhookSpec{}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return string(*p)
	}
	for _, u := range o.kinds("MutatingWebhookConfiguration") {
		if name != "" && u.GetName() != name {
			continue
		}
		for _, w := range as[admissionregistrationv1.MutatingWebhookConfiguration](t, u).Webhooks {
			out[w.Name] = webhookSpec{
				Mutating: true, ClientConfig: w.ClientConfig, Rules: w.Rules, MatchConditions: w.MatchConditions,
				NamespaceSelector: fmt.Sprint(w.NamespaceSelector), FailurePolicy: str((*string)(w.FailurePolicy)),
				SideEffects: str((*string)(w.SideEffects)), TimeoutSeconds: deref(w.TimeoutSeconds),
				ReinvocationPolicy: str((*string)(w.ReinvocationPolicy)), AdmissionReviewVersions: w.AdmissionReviewVersions,
			}
		}
	}
	for _, u := range o.kinds("ValidatingWebhookConfiguration") {
		if name != "" && u.GetName() != name {
			continue
		}
		for _, w := range as[admissionregistrationv1.ValidatingWebhookConfiguration](t, u).Webhooks {
			out[w.Name] = webhookSpec{
				ClientConfig: w.ClientConfig, Rules: w.Rules, MatchConditions: w.MatchConditions,
				NamespaceSelector: fmt.Sprint(w.NamespaceSelector), FailurePolicy: str((*string)(w.FailurePolicy)),
				SideEffects: str((*string)(w.SideEffects)), TimeoutSeconds: deref(w.TimeoutSeconds),
				AdmissionReviewVersions: w.AdmissionReviewVersions,
			}
		}
	}
	return out
}

func deref[T any](p *T) (v T) {
	if p != nil {
		v = *p
	}
	return v
}

// path is where a webhook is served, whatever its client config.
func (w webhookSpec) path() string {
	if w.ClientConfig.Service != nil {
		return deref(w.ClientConfig.Service.Path)
	}
	u := deref(w.ClientConfig.URL)
	if i := strings.Index(strings.TrimPrefix(u, "https://"), "/"); i >= 0 {
		return strings.TrimPrefix(u, "https://")[i:]
	}
	return ""
}
