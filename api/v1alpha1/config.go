package v1alpha1

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Config tracking: the ConfigMaps and Secrets a released pod template
// references are part of its revision. serin records their content
// revisions in one pod-template annotation, AnnotationConfig, as `kubectl
// rollout restart` records its restart time, so a change of content is a
// change of template that the hold webhook holds like any other. Each
// content revision is kept as an immutable snapshot beside the object
// (SnapshotName), and the pod webhook points every new pod of the template
// at the snapshots its annotation names: stable pods keep reading the
// content they were released with, canary pods read the candidate's.
const (
	// AnnotationConfig (pod template, written by serin): the content
	// revisions of the tracked ConfigMaps and Secrets, as FormatConfig
	// writes them.
	AnnotationConfig = "serin.dev/config"
	// AnnotationConfigTracking (ConfigMap or Secret): "disabled" keeps the
	// object out of releases; pods read it directly.
	AnnotationConfigTracking = "serin.dev/config-tracking"
	// FlaggerAnnotationConfigTracking is Flagger's name for the same opt-out.
	FlaggerAnnotationConfigTracking = "flagger.app/config-tracking"
	// LabelSnapshotOf (snapshot): the name of the object it copies.
	LabelSnapshotOf = "serin.dev/snapshot-of"
	// LabelConfigSnapshots (pod): the pod webhook pointed the pod at the
	// snapshots of its AnnotationConfig.
	LabelConfigSnapshots = "serin.dev/config-snapshots"
)

// ConfigKind is the kind of a tracked object.
type ConfigKind string

// Tracked kinds, as they appear in AnnotationConfig.
const (
	KindConfigMap ConfigKind = "configmap"
	KindSecret    ConfigKind = "secret"
)

// ConfigRef names a ConfigMap or Secret a pod template references.
type ConfigRef struct {
	Kind ConfigKind `json:"kind"`
	Name string     `json:"name"`
}

func (r ConfigRef) String() string { return string(r.Kind) + "/" + r.Name }

// ConfigRevision is the content revision of one tracked object.
type ConfigRevision struct {
	ConfigRef `json:",inline"`
	// Hash is the revision of its content (ConfigMapHash, SecretHash).
	Hash string `json:"hash"`
}

// TrackingDisabled reports whether a ConfigMap or Secret with these
// annotations opted out of config tracking.
func TrackingDisabled(annotations map[string]string) bool {
	return annotations[AnnotationConfigTracking] == "disabled" || annotations[FlaggerAnnotationConfigTracking] == "disabled"
}

// ConfigRefs lists the ConfigMaps and Secrets a pod spec references, in
// env, envFrom and volumes (projected ones included), of every container
// and init container, sorted and without repeats.
func ConfigRefs(spec *corev1.PodSpec) []ConfigRef {
	set := map[ConfigRef]struct{}{}
	walkConfigNames(spec, func(k ConfigKind, name *string) {
		if *name != "" {
			set[ConfigRef{Kind: k, Name: *name}] = struct{}{}
		}
	})
	refs := make([]ConfigRef, 0, len(set))
	for r := range set {
		refs = append(refs, r)
	}
	slices.SortFunc(refs, compareRefs)
	return refs
}

func compareRefs(a, b ConfigRef) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
}

// RewriteConfigNames points every reference of spec to an object in revs
// at its snapshot, and reports how many references it changed.
func RewriteConfigNames(spec *corev1.PodSpec, revs []ConfigRevision) int {
	to := make(map[ConfigRef]string, len(revs))
	for _, r := range revs {
		to[r.ConfigRef] = SnapshotName(r.Name, r.Hash)
	}
	n := 0
	walkConfigNames(spec, func(k ConfigKind, name *string) {
		if s, ok := to[ConfigRef{Kind: k, Name: *name}]; ok {
			*name, n = s, n+1
		}
	})
	return n
}

// walkConfigNames calls f with a pointer to every ConfigMap and Secret name
// in spec.
func walkConfigNames(spec *corev1.PodSpec, f func(ConfigKind, *string)) {
	containers := func(cs []corev1.Container) {
		for i := range cs {
			c := &cs[i]
			for j := range c.EnvFrom {
				if r := c.EnvFrom[j].ConfigMapRef; r != nil {
					f(KindConfigMap, &r.Name)
				}
				if r := c.EnvFrom[j].SecretRef; r != nil {
					f(KindSecret, &r.Name)
				}
			}
			for j := range c.Env {
				vf := c.Env[j].ValueFrom
				if vf == nil {
					continue
				}
				if r := vf.ConfigMapKeyRef; r != nil {
					f(KindConfigMap, &r.Name)
				}
				if r := vf.SecretKeyRef; r != nil {
					f(KindSecret, &r.Name)
				}
			}
		}
	}
	containers(spec.InitContainers)
	containers(spec.Containers)
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if v.ConfigMap != nil {
			f(KindConfigMap, &v.ConfigMap.Name)
		}
		if v.Secret != nil {
			f(KindSecret, &v.Secret.SecretName)
		}
		if v.Projected == nil {
			continue
		}
		for j := range v.Projected.Sources {
			src := &v.Projected.Sources[j]
			if src.ConfigMap != nil {
				f(KindConfigMap, &src.ConfigMap.Name)
			}
			if src.Secret != nil {
				f(KindSecret, &src.Secret.Name)
			}
		}
	}
}

// FormatConfig writes content revisions as AnnotationConfig's value:
// `configmap/<name>=<hash>,secret/<name>=<hash>`, sorted. No revisions is
// the empty string.
func FormatConfig(revs []ConfigRevision) string {
	s := slices.Clone(revs)
	slices.SortFunc(s, func(a, b ConfigRevision) int { return compareRefs(a.ConfigRef, b.ConfigRef) })
	parts := make([]string, len(s))
	for i, r := range s {
		parts[i] = r.String() + "=" + r.Hash
	}
	return strings.Join(parts, ",")
}

// ParseConfig reads AnnotationConfig's value.
func ParseConfig(v string) ([]ConfigRevision, error) {
	if v == "" {
		return nil, nil
	}
	var revs []ConfigRevision
	for _, part := range strings.Split(v, ",") {
		ref, hash, ok := strings.Cut(part, "=")
		kind, name, ok2 := strings.Cut(ref, "/")
		k := ConfigKind(kind)
		if !ok || !ok2 || name == "" || hash == "" || (k != KindConfigMap && k != KindSecret) {
			return nil, fmt.Errorf("%s: %q is not <configmap|secret>/<name>=<hash>", AnnotationConfig, part)
		}
		revs = append(revs, ConfigRevision{ConfigRef: ConfigRef{Kind: k, Name: name}, Hash: hash})
	}
	return revs, nil
}

// ChangedConfig lists the objects whose content differs between two
// AnnotationConfig values (added and removed ones included), sorted.
func ChangedConfig(from, to string) []string {
	a, _ := ParseConfig(from)
	b, _ := ParseConfig(to)
	seen := map[ConfigRef]string{}
	for _, r := range a {
		seen[r.ConfigRef] = r.Hash
	}
	var out []string
	for _, r := range b {
		if h, ok := seen[r.ConfigRef]; !ok || h != r.Hash {
			out = append(out, r.String())
		}
		delete(seen, r.ConfigRef)
	}
	for r := range seen {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return out
}

// snapshotHashLen is the length of a content hash (hex digits).
const snapshotHashLen = 10

// SnapshotName is the name of the immutable snapshot of an object's
// content: `<name>-<hash>`, the name cut so that the whole fits in 253
// characters (a DNS subdomain).
func SnapshotName(name, hash string) string {
	if max := 253 - len(hash) - 1; len(name) > max {
		name = strings.TrimRight(name[:max], ".-")
	}
	return name + "-" + hash
}

// ConfigMapHash is the content revision of a ConfigMap's data.
func ConfigMapHash(data map[string]string, binary map[string][]byte) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(h, "d%d:%s%d:%s", len(k), k, len(data[k]), data[k])
	}
	for _, k := range slices.Sorted(maps.Keys(binary)) {
		fmt.Fprintf(h, "b%d:%s%d:", len(k), k, len(binary[k]))
		h.Write(binary[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:snapshotHashLen]
}

// SecretHash is the content revision of a Secret's type and data.
func SecretHash(typ corev1.SecretType, data map[string][]byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "t%d:%s", len(typ), typ)
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(h, "b%d:%s%d:", len(k), k, len(data[k]))
		h.Write(data[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:snapshotHashLen]
}
