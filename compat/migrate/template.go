package migrate

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// MapTemplate is the pod template Flagger's primary runs, made fit for
// the user's Deployment again: label values Flagger renamed to
// <value>-primary are the target's again (its selector's always), the
// flagger-id annotation is dropped, and references to the ConfigMaps and
// Secrets Flagger copied as <name>-primary point at the target's <name>
// again. When the result runs the same pods as the target's own template,
// that template is returned, so that nothing rolls for nothing.
func MapTemplate(primary, target *appsv1.Deployment) (*corev1.PodTemplateSpec, error) {
	t := primary.Spec.Template.DeepCopy()
	own := target.Spec.Template.Labels
	for k, v := range t.Labels {
		if ov, ok := own[k]; ok && v == ov+primarySuffix {
			t.Labels[k] = ov
		}
	}
	if target.Spec.Selector != nil {
		if t.Labels == nil {
			t.Labels = map[string]string{}
		}
		for k, v := range target.Spec.Selector.MatchLabels {
			t.Labels[k] = v
		}
		sel, err := metav1.LabelSelectorAsSelector(target.Spec.Selector)
		if err != nil {
			return nil, err
		}
		if !sel.Matches(labels.Set(t.Labels)) {
			return nil, fmt.Errorf("the primary's pod labels %v cannot be mapped to match the selector of Deployment %s", t.Labels, target.Name)
		}
	}
	if _, ours := target.Spec.Template.Annotations[flaggerIDAnnotation]; !ours {
		delete(t.Annotations, flaggerIDAnnotation)
	}
	renameConfigRefs(&t.Spec, configRefs(&target.Spec.Template.Spec))
	if v1alpha1.TemplateHash(t) == v1alpha1.TemplateHash(&target.Spec.Template) {
		return target.Spec.Template.DeepCopy(), nil
	}
	return t, nil
}

// configRefs are the names of the ConfigMaps and Secrets a pod spec
// refers to, as "configmap/<name>" and "secret/<name>".
func configRefs(s *corev1.PodSpec) map[string]bool {
	out := map[string]bool{}
	walkConfigRefs(s, func(kind string, name *string) { out[kind+"/"+*name] = true })
	return out
}

// renameConfigRefs points references to <name>-primary at <name> where
// own holds <name>.
func renameConfigRefs(s *corev1.PodSpec, own map[string]bool) {
	walkConfigRefs(s, func(kind string, name *string) {
		if base, ok := strings.CutSuffix(*name, primarySuffix); ok && own[kind+"/"+base] {
			*name = base
		}
	})
}

// walkConfigRefs calls f with every ConfigMap and Secret name a pod spec
// refers to: volumes (projected too), envFrom and env of every container.
func walkConfigRefs(s *corev1.PodSpec, f func(kind string, name *string)) {
	for i := range s.Volumes {
		v := &s.Volumes[i].VolumeSource
		if v.ConfigMap != nil {
			f("configmap", &v.ConfigMap.Name)
		}
		if v.Secret != nil {
			f("secret", &v.Secret.SecretName)
		}
		if v.Projected != nil {
			for j := range v.Projected.Sources {
				p := &v.Projected.Sources[j]
				if p.ConfigMap != nil {
					f("configmap", &p.ConfigMap.Name)
				}
				if p.Secret != nil {
					f("secret", &p.Secret.Name)
				}
			}
		}
	}
	for _, cs := range [][]corev1.Container{s.InitContainers, s.Containers} {
		for i := range cs {
			walkContainerRefs(&cs[i], f)
		}
	}
}

func walkContainerRefs(c *corev1.Container, f func(kind string, name *string)) {
	for j := range c.EnvFrom {
		e := &c.EnvFrom[j]
		if e.ConfigMapRef != nil {
			f("configmap", &e.ConfigMapRef.Name)
		}
		if e.SecretRef != nil {
			f("secret", &e.SecretRef.Name)
		}
	}
	for j := range c.Env {
		vf := c.Env[j].ValueFrom
		if vf == nil {
			continue
		}
		if vf.ConfigMapKeyRef != nil {
			f("configmap", &vf.ConfigMapKeyRef.Name)
		}
		if vf.SecretKeyRef != nil {
			f("secret", &vf.SecretKeyRef.Name)
		}
	}
}
