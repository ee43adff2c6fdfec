package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
	jsoniter "github.com/json-iterator/go"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Paths the webhooks are served on (the webhook configurations name them).
const (
	PathHoldDeployment         = "/mutate-apps-v1-deployment"
	PathValidateDeployment     = "/validate-apps-v1-deployment"
	PathValidateCanary         = "/validate-serin-dev-v1alpha1-canary"
	PathValidateMetricTemplate = "/validate-serin-dev-v1alpha1-metrictemplate"
	PathValidateAlertProvider  = "/validate-serin-dev-v1alpha1-alertprovider"
)

// Option configures Register.
type Option func(*options)

type options struct {
	owners OwnershipReader
}

// WithHostOwners checks the hosts a Canary claims against what its
// namespace owns (v1alpha1.HostOwnership), read through r. Without it,
// hosts are checked for syntax only.
func WithHostOwners(r OwnershipReader) Option {
	return func(o *options) { o.owners = r }
}

// Register serves serin's webhooks on srv, counting their requests in m.
func Register(srv webhook.Server, m *Metrics, log logr.Logger, opts ...Option) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	srv.Register(PathHoldDeployment, &webhook.Admission{Handler: m.instrument("hold", HandlerFunc(holdDeployment))})
	srv.Register(PathValidateDeployment, &webhook.Admission{Handler: m.instrument("validate-deployment", HandlerFunc(validateDeployment))})
	canaries := withWarnings(validateCanary(o.owners), canaryNotes)
	templates := withWarnings(validator(v1alpha1.ValidateMetricTemplate), metricTemplateNotes)
	providers := withWarnings(validator(v1alpha1.ValidateAlertProvider), alertProviderNotes)
	srv.Register(PathValidateCanary, &webhook.Admission{Handler: m.instrument("validate-canary", canaries)})
	srv.Register(PathValidateMetricTemplate, &webhook.Admission{Handler: m.instrument("validate-metrictemplate", templates)})
	srv.Register(PathValidateAlertProvider, &webhook.Admission{Handler: m.instrument("validate-alertprovider", providers)})
	srv.Register(PathValidateFlaggerCanary, &webhook.Admission{Handler: m.instrument("validate-flagger-canary", asSerin(canaries, flaggerCanary))})
	srv.Register(PathValidateFlaggerMetricTemplate, &webhook.Admission{Handler: m.instrument("validate-flagger-metrictemplate", asSerin(templates, flaggerMetricTemplate))})
	srv.Register(PathValidateFlaggerAlertProvider, &webhook.Admission{Handler: m.instrument("validate-flagger-alertprovider", asSerin(providers, flaggerAlertProvider))})
	log.V(1).Info("admission webhooks registered")
}

// HandlerFunc adapts a function to admission.Handler.
type HandlerFunc func(context.Context, admission.Request) admission.Response

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, req admission.Request) admission.Response {
	return f(ctx, req)
}

var _ admission.Handler = HandlerFunc(nil)

// holdDeployment answers the mutating webhook on Deployments.
func holdDeployment(_ context.Context, req admission.Request) admission.Response {
	if req.SubResource != "" {
		return admission.Allowed("")
	}
	obj, err := decodeHeld(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode deployment: %w", err))
	}
	var old *appsv1.Deployment
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		if old, err = decodeHeld(req.OldObject.Raw); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode old deployment: %w", err))
		}
	}
	ops := Hold(old, obj)
	if len(ops) == 0 {
		return admission.Allowed("")
	}
	return admission.Patched("serin holds the new revision "+obj.Name+" for a canary release", ops...)
}

// decodeHeld decodes only what Hold reads of a Deployment (annotations,
// paused, the pod template) in one pass: managed fields, status and the
// rest of the object are skipped without being decoded, which is most of
// the cost of a review.
func decodeHeld(raw []byte) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	it := jsoniter.ConfigCompatibleWithStandardLibrary.BorrowIterator(raw)
	defer jsoniter.ConfigCompatibleWithStandardLibrary.ReturnIterator(it)
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "metadata":
			it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
				switch field {
				case "name":
					d.Name = it.ReadString()
				case "annotations":
					it.ReadVal(&d.Annotations)
				default:
					it.Skip()
				}
				return it.Error == nil
			})
		case "spec":
			it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
				switch field {
				case "paused":
					d.Spec.Paused = it.ReadBool()
				case "template":
					it.ReadVal(&d.Spec.Template)
				default:
					it.Skip()
				}
				return it.Error == nil
			})
		default:
			it.Skip()
		}
		return it.Error == nil
	})
	if it.Error != nil && it.Error != io.EOF {
		return nil, it.Error
	}
	return d, nil
}

// validateDeployment checks the serin annotations of a Deployment.
func validateDeployment(_ context.Context, req admission.Request) admission.Response {
	var obj appsv1.Deployment
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode deployment: %w", err))
	}
	hasSerin := false
	for k := range obj.Annotations {
		hasSerin = hasSerin || strings.HasPrefix(k, "serin.dev/")
	}
	if !hasSerin {
		return admission.Allowed("")
	}
	return deny(schema.GroupKind{Group: "apps", Kind: "Deployment"}, obj.Name, v1alpha1.ValidateAnnotations(obj.Name, obj.Annotations))
}

// validator turns a validation function of a serin type into a handler.
func validator[T any, PT interface {
	*T
	GetName() string
}](validate func(PT) field.ErrorList) admission.Handler {
	return HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		obj := PT(new(T))
		if err := json.Unmarshal(req.Object.Raw, obj); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode %s: %w", req.Kind.Kind, err))
		}
		return deny(schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}, obj.GetName(), validate(obj))
	})
}

// deny answers with the API's standard Invalid status, which kubectl
// prints as `The Canary "x" is invalid: spec.analysis.stepWeight: ...`.
func deny(gk schema.GroupKind, name string, errs field.ErrorList) admission.Response {
	if len(errs) == 0 {
		return admission.Allowed("")
	}
	status := apierrors.NewInvalid(gk, name, errs).ErrStatus
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
}
