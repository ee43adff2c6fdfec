package migrate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/serin-dev/serin/api/flaggerv1beta1"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// Source is one input of Import: a file's name (for messages) and bytes.
type Source struct {
	Name string
	Data []byte
}

// Imported is what Import makes of its sources.
type Imported struct {
	// YAML is serin's objects, one document each, in the order of the
	// input documents, with comments naming what serin ignores.
	YAML []byte
	// Notes name every field serin ignores, one line each, for stderr.
	Notes []string
}

// doc is one input document.
type doc struct {
	source string
	raw    []byte
	meta   metav1.PartialObjectMetadata
}

func (d *doc) key() string { return d.meta.Namespace + "/" + d.meta.Name }

func (d *doc) is(apiVersion, kind string) bool {
	return d.meta.APIVersion == apiVersion && d.meta.Kind == kind
}

const flaggerAPI = "flagger.app/v1beta1"

// Import turns Flagger's manifests into serin's: each flagger.app Canary
// becomes annotations on its Deployment when they express its spec (the
// Deployment itself with the annotations when a source holds it, else a
// patch of its metadata), else a serin.dev Canary; MetricTemplates and
// AlertProviders become serin's kinds; every other document is passed
// through unchanged. It is a pure function of its sources.
func Import(sources []Source) (Imported, error) {
	var docs []*doc
	for _, s := range sources {
		ds, err := splitDocs(s)
		if err != nil {
			return Imported{}, err
		}
		docs = append(docs, ds...)
	}
	deployments := map[string]*doc{}
	for _, d := range docs {
		if d.is("apps/v1", "Deployment") {
			deployments[d.key()] = d
		}
	}
	im := importer{deployments: deployments, annotate: map[string]annotated{}}
	for _, d := range docs {
		if err := im.plan(d); err != nil {
			return Imported{}, fmt.Errorf("%s: %s %s: %w", d.source, d.meta.Kind, d.key(), err)
		}
	}
	var out bytes.Buffer
	for _, d := range docs {
		b, err := im.render(d)
		if err != nil {
			return Imported{}, fmt.Errorf("%s: %s %s: %w", d.source, d.meta.Kind, d.key(), err)
		}
		if len(b) == 0 {
			continue
		}
		if out.Len() > 0 {
			out.WriteString("---\n")
		}
		out.Write(b)
	}
	return Imported{YAML: out.Bytes(), Notes: im.notes}, nil
}

// splitDocs reads the YAML (or JSON) documents of a source, leaving out
// empty ones.
func splitDocs(s Source) ([]*doc, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(s.Data)))
	var out []*doc
	for {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		d := &doc{source: s.Name, raw: bytes.TrimSpace(raw)}
		if err := yaml.Unmarshal(raw, &d.meta); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		if d.meta.Kind == "" && d.meta.APIVersion == "" {
			continue // only comments, or empty
		}
		out = append(out, d)
	}
}

// annotated is a Deployment that gets annotations for a Canary.
type annotated struct {
	canary string
	ann    map[string]string
	notes  []v1alpha1.FieldNote
}

// importer holds what the first pass decided.
type importer struct {
	deployments map[string]*doc
	// annotate: Deployment key → the annotations it gets.
	annotate map[string]annotated
	notes    []string
}

// plan decides, for a flagger.app Canary, between annotations and a
// Canary, and records the notes of every Flagger object.
func (im *importer) plan(d *doc) error {
	if d.meta.APIVersion != flaggerAPI {
		return nil
	}
	switch d.meta.Kind {
	case "Canary":
		var c flaggerv1beta1.Canary
		if err := yaml.UnmarshalStrict(d.raw, &c); err != nil {
			return err
		}
		spec := flaggerv1beta1.SpecToSerin(&c.Spec)
		notes := v1alpha1.Ignored(&spec)
		im.note(d, notes)
		if ann, ok := AsAnnotations(c.Name, &spec); ok {
			im.annotate[c.Namespace+"/"+c.Name] = annotated{canary: c.Name, ann: ann, notes: notes}
		}
	case "MetricTemplate":
		var t flaggerv1beta1.MetricTemplate
		if err := yaml.UnmarshalStrict(d.raw, &t); err != nil {
			return err
		}
		im.note(d, v1alpha1.IgnoredMetricTemplate(&t.Spec))
	case "AlertProvider":
		var a flaggerv1beta1.AlertProvider
		if err := yaml.UnmarshalStrict(d.raw, &a); err != nil {
			return err
		}
		im.note(d, v1alpha1.IgnoredAlertProvider(&a.Spec))
	}
	return nil
}

func (im *importer) note(d *doc, notes []v1alpha1.FieldNote) {
	for _, n := range notes {
		im.notes = append(im.notes, fmt.Sprintf("%s %s: serin ignores %s", d.meta.Kind, d.key(), n))
	}
}

// render is the output document for d (nil for none).
func (im *importer) render(d *doc) ([]byte, error) {
	switch {
	case d.is("apps/v1", "Deployment"):
		a, ok := im.annotate[d.key()]
		if !ok {
			return append(d.raw, '\n'), nil
		}
		return annotatedDeployment(d, a)
	case d.meta.APIVersion != flaggerAPI:
		return append(d.raw, '\n'), nil
	}
	switch d.meta.Kind {
	case "Canary":
		var c flaggerv1beta1.Canary
		if err := yaml.UnmarshalStrict(d.raw, &c); err != nil {
			return nil, err
		}
		if a, ok := im.annotate[d.key()]; ok {
			if _, inFile := im.deployments[d.key()]; inFile {
				return nil, nil // the Deployment carries it
			}
			return deploymentPatch(c.Namespace, a)
		}
		sc := flaggerv1beta1.ToSerin(&c)
		return withComments(fmt.Sprintf("flagger.app Canary %s as a serin.dev Canary (annotations cannot express its spec)", d.key()),
			v1alpha1.Ignored(&sc.Spec), sc)
	case "MetricTemplate":
		var t flaggerv1beta1.MetricTemplate
		if err := yaml.UnmarshalStrict(d.raw, &t); err != nil {
			return nil, err
		}
		return withComments("", v1alpha1.IgnoredMetricTemplate(&t.Spec), flaggerv1beta1.MetricTemplateToSerin(&t))
	case "AlertProvider":
		var a flaggerv1beta1.AlertProvider
		if err := yaml.UnmarshalStrict(d.raw, &a); err != nil {
			return nil, err
		}
		return withComments("", v1alpha1.IgnoredAlertProvider(&a.Spec), flaggerv1beta1.AlertProviderToSerin(&a))
	}
	return append(d.raw, '\n'), nil
}

// annotatedDeployment is the Deployment of d with the annotations of a.
func annotatedDeployment(d *doc, a annotated) ([]byte, error) {
	var obj map[string]any
	if err := yaml.Unmarshal(d.raw, &obj); err != nil {
		return nil, err
	}
	meta, _ := obj["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		obj["metadata"] = meta
	}
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
	}
	for k, v := range a.ann {
		ann[k] = v
	}
	meta["annotations"] = ann
	head := fmt.Sprintf("flagger.app Canary %s as annotations on its Deployment", d.key())
	return withComments(head, a.notes, obj)
}

// deploymentPatch is the metadata of the Deployment with a's
// annotations, preceded by the kubectl annotate command that sets them.
func deploymentPatch(namespace string, a annotated) ([]byte, error) {
	keys := slices.Sorted(maps.Keys(a.ann))
	args := []string{"kubectl annotate deployment", a.canary}
	if namespace != "" {
		args = append(args, "-n", namespace)
	}
	for _, k := range keys {
		args = append(args, shellQuote(k+"="+a.ann[k]))
	}
	meta := map[string]any{"name": a.canary, "annotations": a.ann}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	obj := map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta}
	head := fmt.Sprintf("flagger.app Canary %s/%s as annotations on Deployment %s (a patch: kubectl patch --type merge, or):\n%s",
		namespace, a.canary, a.canary, strings.Join(args, " "))
	return withComments(head, a.notes, obj)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// withComments is obj as YAML, without status and empty timestamps,
// after a comment head (may be "") and one comment per ignored field.
func withComments(head string, notes []v1alpha1.FieldNote, obj any) ([]byte, error) {
	b, err := cleanYAML(obj)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, line := range strings.Split(head, "\n") {
		if line != "" {
			fmt.Fprintf(&out, "# %s\n", line)
		}
	}
	for _, n := range notes {
		fmt.Fprintf(&out, "# serin ignores %s\n", n)
	}
	out.Write(b)
	return out.Bytes(), nil
}

// cleanYAML marshals obj without status and null creation timestamps.
func cleanYAML(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		if meta["creationTimestamp"] == nil {
			delete(meta, "creationTimestamp")
		}
	}
	// An unset IntOrString marshals as 0, which no port is.
	if spec, ok := m["spec"].(map[string]any); ok {
		if svc, ok := spec["service"].(map[string]any); ok && svc["targetPort"] == float64(0) {
			delete(svc, "targetPort")
		}
	}
	return yaml.Marshal(m)
}
