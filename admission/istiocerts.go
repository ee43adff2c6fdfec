package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"gomodules.xyz/jsonpatch/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsyaml "sigs.k8s.io/yaml"
)

// Istio's agent writes the pod's workload certificate to files when its
// proxy metadata sets OUTPUT_CERTS to a directory: these names, in that
// directory. In google-grpc mode Istio's Envoys present them to serin.
const (
	IstioOutputCertsDir  = "/etc/istio-output-certs"
	IstioOutputCertChain = "cert-chain.pem"
	IstioOutputKey       = "key.pem"
	IstioOutputRootCert  = "root-cert.pem"
)

// The pod annotations Istio's injector reads, and serin's volume.
const (
	ProxyConfigAnnotation     = "proxy.istio.io/config"
	UserVolumeAnnotation      = "sidecar.istio.io/userVolume"
	UserVolumeMountAnnotation = "sidecar.istio.io/userVolumeMount"
	istioOutputCertsEnv       = "OUTPUT_CERTS"
	// istioMetaSerinXDS becomes the node metadata SERIN_XDS=google-grpc
	// (Istio sends ISTIO_META_* proxy metadata to istiod), which limits
	// serin's EnvoyFilters to proxies that have the certificate files: a
	// google_grpc client certificate file that is missing would make the
	// proxy reject its whole CDS update.
	istioMetaSerinXDS  = "ISTIO_META_SERIN_XDS"
	serinXDSGoogleGRPC = "google-grpc"
	istioCertsVolume   = "serin-istio-certs"
)

// RegisterPodIstioCerts serves, at PathPodBootstrap, the pod webhook of
// Istio google-grpc mode: new pods of opted-in namespaces (label
// serin.dev/istio-bootstrap=enabled) have Istio's agent write their
// workload certificate into an in-memory volume of the proxy, from which
// their Envoys' google_grpc channels to serin take their client
// certificate. Its requests are counted in m.
func RegisterPodIstioCerts(srv webhook.Server, m *Metrics) {
	srv.Register(PathPodBootstrap, &webhook.Admission{Handler: m.instrument("pod-istio-certs", HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		return istioCertsPod(req.Object.Raw)
	}))})
}

func istioCertsPod(raw []byte) admission.Response {
	var pod struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode pod: %w", err))
	}
	set, err := IstioCertAnnotations(pod.Metadata.Annotations)
	if err != nil {
		return admission.Allowed("").WithWarnings("serin: this pod's proxy cannot authenticate to serin's xDS server: " + err.Error())
	}
	if len(set) == 0 {
		return admission.Allowed("")
	}
	if pod.Metadata.Annotations == nil {
		return admission.Patched("", jsonpatch.JsonPatchOperation{Operation: "add", Path: "/metadata/annotations", Value: set})
	}
	var ops []jsonpatch.JsonPatchOperation
	for _, k := range slices.Sorted(maps.Keys(set)) {
		ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: annotationPointer(k), Value: set[k]})
	}
	return admission.Patched("", ops...)
}

// IstioCertAnnotations are the annotations (new values) that make Istio's
// agent write the pod's workload certificate to IstioOutputCertsDir in its
// proxy container, merged into the pod's own: proxy metadata OUTPUT_CERTS,
// an in-memory volume and its mount in the proxy. Empty when the pod has
// them already; an error when the pod's own values cannot be merged (its
// proxy config is not YAML, its volumes not a JSON list, or it writes its
// certificates elsewhere).
func IstioCertAnnotations(ann map[string]string) (map[string]string, error) {
	set := map[string]string{}
	cfg, err := withOutputCerts(ann[ProxyConfigAnnotation])
	if err != nil {
		return nil, err
	}
	if cfg != "" {
		set[ProxyConfigAnnotation] = cfg
	}
	vol := map[string]any{"name": istioCertsVolume, "emptyDir": map[string]any{"medium": "Memory"}}
	mount := map[string]any{"name": istioCertsVolume, "mountPath": IstioOutputCertsDir}
	for k, item := range map[string]map[string]any{UserVolumeAnnotation: vol, UserVolumeMountAnnotation: mount} {
		v, err := withListItem(ann[k], item)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", k, err)
		}
		if v != "" {
			set[k] = v
		}
	}
	return set, nil
}

// withOutputCerts is the proxy config with OUTPUT_CERTS and
// ISTIO_META_SERIN_XDS in its proxy metadata, as JSON (which is YAML);
// empty when they are there already.
func withOutputCerts(proxyConfig string) (string, error) {
	cfg := map[string]any{}
	if proxyConfig != "" {
		if err := sigsyaml.Unmarshal([]byte(proxyConfig), &cfg); err != nil {
			return "", fmt.Errorf("annotation %s: %w", ProxyConfigAnnotation, err)
		}
	}
	md, _ := cfg["proxyMetadata"].(map[string]any)
	if md == nil && cfg["proxyMetadata"] != nil {
		return "", fmt.Errorf("annotation %s: proxyMetadata is not a map", ProxyConfigAnnotation)
	}
	want := map[string]string{istioOutputCertsEnv: IstioOutputCertsDir, istioMetaSerinXDS: serinXDSGoogleGRPC}
	missing := false
	for _, k := range slices.Sorted(maps.Keys(want)) {
		switch cur := md[k]; {
		case cur == want[k]:
		case cur != nil:
			return "", fmt.Errorf("annotation %s: proxyMetadata %s is %v, serin needs %s", ProxyConfigAnnotation, k, cur, want[k])
		default:
			missing = true
		}
	}
	if !missing {
		return "", nil
	}
	if md == nil {
		md = map[string]any{}
	}
	for k, v := range want {
		md[k] = v
	}
	cfg["proxyMetadata"] = md
	b, err := json.Marshal(cfg)
	return string(b), err
}

// withListItem is the JSON list with item appended; empty when an item of
// that name is there already.
func withListItem(list string, item map[string]any) (string, error) {
	var items []map[string]any
	if list != "" {
		if err := json.Unmarshal([]byte(list), &items); err != nil {
			return "", fmt.Errorf("not a JSON list: %w", err)
		}
	}
	for _, it := range items {
		if it["name"] == item["name"] {
			return "", nil
		}
	}
	b, err := json.Marshal(append(items, item))
	return string(b), err
}
