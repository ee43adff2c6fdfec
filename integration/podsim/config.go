package podsim

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ConfigKind is the kind of object a pod reads configuration from.
type ConfigKind string

// The kinds a pod's env and volumes may refer to.
const (
	KindConfigMap ConfigKind = "ConfigMap"
	KindSecret    ConfigKind = "Secret"
)

// ConfigRef names a ConfigMap or Secret in the pod's namespace.
type ConfigRef struct {
	Kind ConfigKind
	Name string
}

func (r ConfigRef) String() string { return string(r.Kind) + " " + r.Name }

// ConfigObject is the content of one ConfigMap or Secret. Data is a ConfigMap's data
// or a Secret's (decoded) data; Binary is a ConfigMap's binaryData, which volumes
// show and env never reads, as with the kubelet.
type ConfigObject struct {
	Data   map[string]string
	Binary map[string]string
}

// ConfigObjects is what was read of the objects a pod refers to. An object that is
// absent was not found.
type ConfigObjects map[ConfigRef]ConfigObject

// ResolvedEnv is a container's environment as the kubelet builds it at start.
type ResolvedEnv struct {
	// Values holds every variable that has a value.
	Values map[string]string
	// FromConfig lists the variables whose value came from a ConfigMap or Secret, as
	// NAME=value, sorted.
	FromConfig []string
}

// VolumeFiles maps a volume name to its files: path inside the volume to content.
type VolumeFiles map[string]map[string]string

// LiteralEnv is the environment made of a container's literal values alone.
func LiteralEnv(c *corev1.Container) ResolvedEnv {
	values := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			values[e.Name] = e.Value
		}
	}
	return ResolvedEnv{Values: values}
}

// EnvConfigRefs lists the objects a container's env and envFrom read, sorted.
func EnvConfigRefs(c *corev1.Container) []ConfigRef {
	var refs []ConfigRef
	for _, ef := range c.EnvFrom {
		if ref, _, ok := envFromRef(ef); ok {
			refs = append(refs, ref)
		}
	}
	for _, e := range c.Env {
		if ref, _, _, ok := envKeyRef(e); ok {
			refs = append(refs, ref)
		}
	}
	return sortRefs(refs)
}

// VolumeConfigRefs lists the objects behind the configMap, secret and projected
// volumes the container mounts, sorted.
func VolumeConfigRefs(pod *corev1.Pod, c *corev1.Container) []ConfigRef {
	var refs []ConfigRef
	for _, v := range mountedVolumes(pod, c) {
		for _, src := range volumeSources(v) {
			refs = append(refs, src.ref)
		}
	}
	return sortRefs(refs)
}

// ResolveEnv builds a container's environment the way the kubelet does: envFrom
// sources in order (keys prefixed, names that are not valid variable names
// skipped), then env entries in order, a later entry overriding an earlier one. A
// missing object or key that is not optional is an error (the kubelet's
// CreateContainerConfigError); an optional one is skipped. Values taken from the
// downward API or resources are not resolved and are left out, and $(VAR)
// references are not expanded.
func ResolveEnv(c *corev1.Container, objs ConfigObjects) (ResolvedEnv, error) {
	values := map[string]string{}
	fromConfig := map[string]bool{}
	for _, ef := range c.EnvFrom {
		ref, optional, ok := envFromRef(ef)
		if !ok {
			continue
		}
		obj, found := objs[ref]
		if !found {
			if optional {
				continue
			}
			return ResolvedEnv{}, fmt.Errorf("envFrom: %s not found", ref)
		}
		for k, v := range obj.Data {
			name := ef.Prefix + k
			if len(validation.IsEnvVarName(name)) > 0 {
				continue
			}
			values[name], fromConfig[name] = v, true
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			values[e.Name], fromConfig[e.Name] = e.Value, false
			continue
		}
		ref, key, optional, ok := envKeyRef(e)
		if !ok {
			continue
		}
		v, err := lookupKey(objs, ref, key)
		if err != nil {
			if optional {
				continue
			}
			return ResolvedEnv{}, fmt.Errorf("env %s: %w", e.Name, err)
		}
		values[e.Name], fromConfig[e.Name] = v, true
	}
	var listed []string
	for name, v := range values {
		if fromConfig[name] {
			listed = append(listed, name+"="+v)
		}
	}
	slices.Sort(listed)
	return ResolvedEnv{Values: values, FromConfig: listed}, nil
}

// ResolveVolume returns the files of one configMap, secret or projected volume:
// every key of its objects, or only the listed items at their paths. A missing
// object or item key that is not optional is an error (the kubelet fails the mount
// and keeps what it had); an optional one contributes nothing.
func ResolveVolume(v corev1.Volume, objs ConfigObjects) (map[string]string, error) {
	files := map[string]string{}
	for _, src := range volumeSources(v) {
		obj, found := objs[src.ref]
		if !found {
			if src.optional {
				continue
			}
			return nil, fmt.Errorf("volume %s: %s not found", v.Name, src.ref)
		}
		all := maps.Clone(obj.Binary)
		if all == nil {
			all = map[string]string{}
		}
		maps.Copy(all, obj.Data)
		if len(src.items) == 0 {
			maps.Copy(files, all)
			continue
		}
		for _, item := range src.items {
			content, ok := all[item.Key]
			if !ok {
				if src.optional {
					continue
				}
				return nil, fmt.Errorf("volume %s: %s has no key %q", v.Name, src.ref, item.Key)
			}
			files[item.Path] = content
		}
	}
	return files, nil
}

// ResolveVolumes resolves every config volume the container mounts. A volume that
// cannot be resolved keeps its files from prev; when it has none there (the first
// read) the error is returned, as the kubelet would not start the container.
func ResolveVolumes(pod *corev1.Pod, c *corev1.Container, objs ConfigObjects, prev VolumeFiles) (VolumeFiles, error) {
	out := VolumeFiles{}
	for _, v := range mountedVolumes(pod, c) {
		files, err := ResolveVolume(v, objs)
		if err != nil {
			old, ok := prev[v.Name]
			if !ok {
				return nil, err
			}
			files = old
		}
		out[v.Name] = files
	}
	return out, nil
}

// MountedFiles maps the container's mounts of config volumes to file paths and
// content. A mount with a subPath shows the part of the volume under it and, as with
// the kubelet, never sees updates: it is read from frozen (the volumes at start)
// while other mounts read live. Mounts with a subPathExpr are left out.
func MountedFiles(c *corev1.Container, live, frozen VolumeFiles) map[string]string {
	out := map[string]string{}
	for _, m := range c.VolumeMounts {
		if m.SubPathExpr != "" {
			continue
		}
		if m.SubPath == "" {
			for p, content := range live[m.Name] {
				out[path.Join(m.MountPath, p)] = content
			}
			continue
		}
		sub := path.Clean(m.SubPath)
		for p, content := range frozen[m.Name] {
			switch {
			case p == sub:
				out[path.Clean(m.MountPath)] = content
			case strings.HasPrefix(p, sub+"/"):
				out[path.Join(m.MountPath, strings.TrimPrefix(p, sub+"/"))] = content
			}
		}
	}
	return out
}

// volumeSource is one object a volume projects.
type volumeSource struct {
	ref      ConfigRef
	items    []corev1.KeyToPath
	optional bool
}

func volumeSources(v corev1.Volume) []volumeSource {
	switch {
	case v.ConfigMap != nil:
		return []volumeSource{{ConfigRef{KindConfigMap, v.ConfigMap.Name}, v.ConfigMap.Items, isTrue(v.ConfigMap.Optional)}}
	case v.Secret != nil:
		return []volumeSource{{ConfigRef{KindSecret, v.Secret.SecretName}, v.Secret.Items, isTrue(v.Secret.Optional)}}
	case v.Projected != nil:
		if isAPIAccessVolume(v.Projected) {
			return nil
		}
		var out []volumeSource
		for _, p := range v.Projected.Sources {
			switch {
			case p.ConfigMap != nil:
				out = append(out, volumeSource{ConfigRef{KindConfigMap, p.ConfigMap.Name}, p.ConfigMap.Items, isTrue(p.ConfigMap.Optional)})
			case p.Secret != nil:
				out = append(out, volumeSource{ConfigRef{KindSecret, p.Secret.Name}, p.Secret.Items, isTrue(p.Secret.Optional)})
			}
		}
		return out
	}
	return nil
}

// isAPIAccessVolume reports a projected volume with a service account token: the
// API access volume (kube-api-access-*, with the kube-root-ca.crt ConfigMap) that
// the ServiceAccount admission adds to every pod. It is credentials, not the app's
// configuration, so podsim neither reads nor reports it.
func isAPIAccessVolume(p *corev1.ProjectedVolumeSource) bool {
	return slices.ContainsFunc(p.Sources, func(s corev1.VolumeProjection) bool { return s.ServiceAccountToken != nil })
}

// mountedVolumes returns the pod's config volumes that the container mounts, in
// the pod's order.
func mountedVolumes(pod *corev1.Pod, c *corev1.Container) []corev1.Volume {
	mounted := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounted[m.Name] = true
	}
	var out []corev1.Volume
	for _, v := range pod.Spec.Volumes {
		if mounted[v.Name] && len(volumeSources(v)) > 0 {
			out = append(out, v)
		}
	}
	return out
}

func envFromRef(ef corev1.EnvFromSource) (ConfigRef, bool, bool) {
	switch {
	case ef.ConfigMapRef != nil:
		return ConfigRef{KindConfigMap, ef.ConfigMapRef.Name}, isTrue(ef.ConfigMapRef.Optional), true
	case ef.SecretRef != nil:
		return ConfigRef{KindSecret, ef.SecretRef.Name}, isTrue(ef.SecretRef.Optional), true
	}
	return ConfigRef{}, false, false
}

func envKeyRef(e corev1.EnvVar) (ref ConfigRef, key string, optional, ok bool) {
	switch {
	case e.ValueFrom == nil:
	case e.ValueFrom.ConfigMapKeyRef != nil:
		s := e.ValueFrom.ConfigMapKeyRef
		return ConfigRef{KindConfigMap, s.Name}, s.Key, isTrue(s.Optional), true
	case e.ValueFrom.SecretKeyRef != nil:
		s := e.ValueFrom.SecretKeyRef
		return ConfigRef{KindSecret, s.Name}, s.Key, isTrue(s.Optional), true
	}
	return ConfigRef{}, "", false, false
}

func lookupKey(objs ConfigObjects, ref ConfigRef, key string) (string, error) {
	obj, found := objs[ref]
	if !found {
		return "", fmt.Errorf("%s not found", ref)
	}
	v, ok := obj.Data[key]
	if !ok {
		return "", fmt.Errorf("%s has no key %q", ref, key)
	}
	return v, nil
}

func sortRefs(refs []ConfigRef) []ConfigRef {
	slices.SortFunc(refs, func(a, b ConfigRef) int {
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return slices.Compact(refs)
}

func isTrue(b *bool) bool { return b != nil && *b }

// maxReportedContent bounds each file's content in the X-Config-Files report.
const maxReportedContent = 100

// envReport is the X-Config-Env value: the config-sourced variables, joined by ",".
func envReport(fromConfig []string) string {
	out := make([]string, len(fromConfig))
	for i, kv := range fromConfig {
		out[i] = headerSafe(kv)
	}
	return strings.Join(out, ",")
}

// filesReport is the X-Config-Files value: path=content sorted by path, joined by
// ",", each content trimmed of surrounding space and cut at 100 bytes.
func filesReport(files map[string]string) string {
	out := make([]string, 0, len(files))
	for _, p := range slices.Sorted(maps.Keys(files)) {
		content := strings.TrimSpace(files[p])
		if len(content) > maxReportedContent {
			content = content[:maxReportedContent]
		}
		out = append(out, headerSafe(p+"="+content))
	}
	return strings.Join(out, ",")
}

// headerSafe makes s valid in an HTTP header and in gRPC ASCII metadata: control
// characters become spaces and bytes outside printable ASCII become '?'.
func headerSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c < 0x20 || c == 0x7f:
			b[i] = ' '
		case c > 0x7f:
			b[i] = '?'
		}
	}
	return string(b)
}
