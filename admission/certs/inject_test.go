package certs

import (
	"encoding/json"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

func TestCABundlePatch(t *testing.T) {
	bundle := []byte("-----BEGIN CERTIFICATE-----\nnew\n")
	cfg := admissionregistrationv1.ValidatingWebhookConfiguration{
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			{Name: "a.serin.dev", ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: bundle}},
			{Name: "b.serin.dev"},
			{Name: "c.serin.dev", ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: []byte("old")}},
		},
	}
	p, err := caBundlePatch(validatingHooks(&cfg), bundle)
	if err != nil {
		t.Fatal(err)
	}
	var ops []map[string]any
	if err := json.Unmarshal(p, &ops); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 4 || ops[0]["path"] != "/webhooks/1/name" || ops[3]["path"] != "/webhooks/2/clientConfig/caBundle" {
		t.Errorf("ops = %s", p)
	}

	// Applied to the object, every webhook ends up with the bundle.
	doc, _ := json.Marshal(cfg)
	patch, err := jsonpatch.DecodePatch(p)
	if err != nil {
		t.Fatal(err)
	}
	out, err := patch.Apply(doc)
	if err != nil {
		t.Fatal(err)
	}
	var got admissionregistrationv1.ValidatingWebhookConfiguration
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !trustsAll(validatingHooks(&got), func(b []byte) bool { return string(b) == string(bundle) }) {
		t.Errorf("patched: %s", out)
	}
	if p, _ := caBundlePatch(validatingHooks(&got), bundle); p != nil {
		t.Errorf("second patch = %s, want none", p)
	}

	// A patch made from a stale copy fails rather than hitting another webhook.
	reordered := cfg.DeepCopy()
	reordered.Webhooks[1], reordered.Webhooks[2] = reordered.Webhooks[2], reordered.Webhooks[1]
	doc, _ = json.Marshal(reordered)
	if _, err := patch.Apply(doc); err == nil {
		t.Error("patch applied to a reordered configuration")
	}
}
