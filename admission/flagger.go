package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/serin-dev/serin/api/flaggerv1beta1"
)

// Paths of the webhooks for Flagger's flagger.app/v1beta1 kinds (served
// always; the chart's flagger.compat registers them).
const (
	PathValidateFlaggerCanary         = "/validate-flagger-app-v1beta1-canary"
	PathValidateFlaggerMetricTemplate = "/validate-flagger-app-v1beta1-metrictemplate"
	PathValidateFlaggerAlertProvider  = "/validate-flagger-app-v1beta1-alertprovider"
)

// asSerin validates a flagger.app object as the serin.dev object it is
// run as: the request's objects are converted (api/flaggerv1beta1, the one
// place of conversion) and handed to h, serin's own validation with its
// warnings. Errors keep naming Flagger's kind and field paths, which are
// the same as serin's.
func asSerin[F any](h admission.Handler, convert func(*F) runtime.Object) admission.Handler {
	return HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		var err error
		if req.Object.Raw, err = convertRaw(req.Object.Raw, convert); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode %s: %w", req.Kind.Kind, err))
		}
		if req.OldObject.Raw, err = convertRaw(req.OldObject.Raw, convert); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode old %s: %w", req.Kind.Kind, err))
		}
		return h.Handle(ctx, req)
	})
}

// convertRaw decodes a Flagger object from raw and encodes its serin
// form; empty raw (no old object on create) stays empty.
func convertRaw[F any](raw []byte, convert func(*F) runtime.Object) ([]byte, error) {
	if len(raw) == 0 {
		return raw, nil
	}
	obj := new(F)
	if err := json.Unmarshal(raw, obj); err != nil {
		return nil, err
	}
	return json.Marshal(convert(obj))
}

func flaggerCanary(c *flaggerv1beta1.Canary) runtime.Object { return flaggerv1beta1.ToSerin(c) }

func flaggerMetricTemplate(t *flaggerv1beta1.MetricTemplate) runtime.Object {
	return flaggerv1beta1.MetricTemplateToSerin(t)
}

func flaggerAlertProvider(a *flaggerv1beta1.AlertProvider) runtime.Object {
	return flaggerv1beta1.AlertProviderToSerin(a)
}
