package v1alpha1

import (
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ResolveSpec is the effective spec of a Canary for its Deployment:
// defaults ← the Deployment's annotations ← the Canary's own spec (unless
// serin wrote that spec from the annotations), with the service port taken
// from the Deployment's first container port when none is set. d may be
// nil. Conflicts list fields set both ways.
func ResolveSpec(c *Canary, d *appsv1.Deployment) (CanarySpec, []Conflict) {
	return ResolveSpecFrom(c, d, AnnotatedSpec(d))
}

// AnnotatedSpec is the spec a managed Deployment's annotations stand for
// (SpecFromAnnotations, invalid values left out), or nil when d is nil or
// not opted in.
func AnnotatedSpec(d *appsv1.Deployment) *CanarySpec {
	if d == nil || !Managed(d.Annotations) {
		return nil
	}
	spec, _ := SpecFromAnnotations(d.Name, d.Annotations)
	return spec
}

// ResolveSpecFrom is ResolveSpec for a caller that has already parsed the
// Deployment's annotations: fromAnn must be AnnotatedSpec(d). It does not
// modify fromAnn.
func ResolveSpecFrom(c *Canary, d *appsv1.Deployment, fromAnn *CanarySpec) (CanarySpec, []Conflict) {
	var explicit *CanarySpec
	if c.Annotations[AnnotationSource] != SourceAnnotations || fromAnn == nil {
		explicit = c.Spec.DeepCopy()
	}
	spec, conflicts := Effective(fromAnn, explicit)
	if spec.TargetRef.Name == "" {
		spec.TargetRef.Name = c.Name
	}
	if spec.Service.Name == "" {
		spec.Service.Name = spec.TargetRef.Name
	}
	if d != nil {
		port := firstPort(d)
		if spec.Service.Port == 0 && port != nil {
			spec.Service.Port = port.ContainerPort
			if spec.Service.TargetPort.IntVal == 0 && spec.Service.TargetPort.StrVal == "" {
				spec.Service.TargetPort = intstr.FromInt32(port.ContainerPort)
			}
		}
	}
	if spec.Service.TargetPort.IntVal == 0 && spec.Service.TargetPort.StrVal == "" {
		spec.Service.TargetPort = intstr.FromInt32(spec.Service.Port)
	}
	return spec, conflicts
}

type containerPort struct{ ContainerPort int32 }

func firstPort(d *appsv1.Deployment) *containerPort {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			return &containerPort{ContainerPort: p.ContainerPort}
		}
	}
	return nil
}
