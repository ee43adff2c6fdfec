package certs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// webhookCA is one webhook of a configuration: its name and caBundle.
type webhookCA struct {
	Name     string
	CABundle []byte
}

type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// caBundlePatch is the JSON patch that sets the caBundle of every webhook
// whose caBundle is not bundle, or nil when none needs it. Each change is
// guarded by a test of the webhook's name at that index, so a patch
// computed from a stale copy fails instead of landing on another webhook.
func caBundlePatch(hooks []webhookCA, bundle []byte) ([]byte, error) {
	var ops []patchOp
	for i, h := range hooks {
		if bytes.Equal(h.CABundle, bundle) {
			continue
		}
		base := "/webhooks/" + strconv.Itoa(i)
		ops = append(ops,
			patchOp{Op: "test", Path: base + "/name", Value: h.Name},
			// caBundle is bytes, so JSON carries it in base64, as
			// encoding/json writes a []byte.
			patchOp{Op: "add", Path: base + "/clientConfig/caBundle", Value: bundle},
		)
	}
	if len(ops) == 0 {
		return nil, nil
	}
	return json.Marshal(ops)
}

// trustsAll reports whether every webhook trusts the CA whose PEM bundle
// membership is checked by trusts.
func trustsAll(hooks []webhookCA, trusts func(bundle []byte) bool) bool {
	for _, h := range hooks {
		if !trusts(h.CABundle) {
			return false
		}
	}
	return true
}

func mutatingHooks(c *admissionregistrationv1.MutatingWebhookConfiguration) []webhookCA {
	out := make([]webhookCA, 0, len(c.Webhooks))
	for _, w := range c.Webhooks {
		out = append(out, webhookCA{Name: w.Name, CABundle: w.ClientConfig.CABundle})
	}
	return out
}

func validatingHooks(c *admissionregistrationv1.ValidatingWebhookConfiguration) []webhookCA {
	out := make([]webhookCA, 0, len(c.Webhooks))
	for _, w := range c.Webhooks {
		out = append(out, webhookCA{Name: w.Name, CABundle: w.ClientConfig.CABundle})
	}
	return out
}

const (
	kindMutating   = "MutatingWebhookConfiguration"
	kindValidating = "ValidatingWebhookConfiguration"
)

// webhookConfig is one webhook configuration as the Rotator sees it.
type webhookConfig struct {
	kind  string
	hooks []webhookCA
}

// webhookConfigs are the named configurations that exist, from the
// informers' stores.
func (r *Rotator) webhookConfigs() []webhookConfig {
	var out []webhookConfig
	name := r.opts.WebhookConfigName
	if obj, ok, _ := r.mutating.GetStore().GetByKey(name); ok {
		if c, ok := obj.(*admissionregistrationv1.MutatingWebhookConfiguration); ok {
			out = append(out, webhookConfig{kind: kindMutating, hooks: mutatingHooks(c)})
		}
	}
	if obj, ok, _ := r.validating.GetStore().GetByKey(name); ok {
		if c, ok := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration); ok {
			out = append(out, webhookConfig{kind: kindValidating, hooks: validatingHooks(c)})
		}
	}
	return out
}

// inject writes bundle into every webhook of the configurations that lack
// it. A configuration deleted meanwhile is skipped.
func (r *Rotator) inject(ctx context.Context, configs []webhookConfig, bundle []byte) error {
	name := r.opts.WebhookConfigName
	for _, c := range configs {
		p, err := caBundlePatch(c.hooks, bundle)
		if err != nil {
			return err
		}
		if p == nil {
			continue
		}
		opts := metav1.PatchOptions{FieldManager: fieldManager}
		api := r.client.AdmissionregistrationV1()
		if c.kind == kindMutating {
			_, err = api.MutatingWebhookConfigurations().Patch(ctx, name, types.JSONPatchType, p, opts)
		} else {
			_, err = api.ValidatingWebhookConfigurations().Patch(ctx, name, types.JSONPatchType, p, opts)
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("patch caBundle of %s %s: %w", c.kind, name, err)
		}
		r.log.Info("webhook caBundle updated", "kind", c.kind, "name", name)
	}
	return nil
}
