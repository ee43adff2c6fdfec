package admission

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestIstioCertAnnotations(t *testing.T) {
	const (
		cfg   = `{"proxyMetadata":{"ISTIO_META_SERIN_XDS":"google-grpc","OUTPUT_CERTS":"/etc/istio-output-certs"}}`
		vols  = `[{"emptyDir":{"medium":"Memory"},"name":"serin-istio-certs"}]`
		mount = `[{"mountPath":"/etc/istio-output-certs","name":"serin-istio-certs"}]`
	)
	tests := []struct {
		name    string
		ann     map[string]string
		want    map[string]string
		wantErr string
	}{
		{"none", nil, map[string]string{ProxyConfigAnnotation: cfg, UserVolumeAnnotation: vols, UserVolumeMountAnnotation: mount}, ""},
		{"merged into the pod's own", map[string]string{
			ProxyConfigAnnotation:     "holdApplicationUntilProxyStarts: true\nproxyMetadata:\n  FOO: bar\n",
			UserVolumeAnnotation:      `[{"name":"data","emptyDir":{}}]`,
			UserVolumeMountAnnotation: `[{"name":"data","mountPath":"/data"}]`,
		}, map[string]string{
			ProxyConfigAnnotation:     `{"holdApplicationUntilProxyStarts":true,"proxyMetadata":{"FOO":"bar","ISTIO_META_SERIN_XDS":"google-grpc","OUTPUT_CERTS":"/etc/istio-output-certs"}}`,
			UserVolumeAnnotation:      `[{"emptyDir":{},"name":"data"},{"emptyDir":{"medium":"Memory"},"name":"serin-istio-certs"}]`,
			UserVolumeMountAnnotation: `[{"mountPath":"/data","name":"data"},{"mountPath":"/etc/istio-output-certs","name":"serin-istio-certs"}]`,
		}, ""},
		{"already there", map[string]string{ProxyConfigAnnotation: cfg, UserVolumeAnnotation: vols, UserVolumeMountAnnotation: mount}, map[string]string{}, ""},
		{"certificates written elsewhere", map[string]string{ProxyConfigAnnotation: `{"proxyMetadata":{"OUTPUT_CERTS":"/other"}}`}, nil, "serin needs"},
		{"volumes not a list", map[string]string{UserVolumeAnnotation: `{"data":{}}`}, nil, "not a JSON list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := IstioCertAnnotations(tt.ann)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want an error about %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %s, want %s", k, got[k], v)
				}
			}
		})
	}
}

func TestIstioCertsPod(t *testing.T) {
	resp := istioCertsPod([]byte(`{"metadata":{"name":"p","annotations":{"a":"b"}}}`))
	if !resp.Allowed || len(resp.Patches) != 3 {
		t.Fatalf("allowed %v, patches %v", resp.Allowed, resp.Patches)
	}
	b, err := json.Marshal(resp.Patches)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"path":"/metadata/annotations/proxy.istio.io~1config"`) {
		t.Errorf("patch %s", b)
	}
	resp = istioCertsPod([]byte(`{"metadata":{"name":"p","annotations":{"sidecar.istio.io/userVolume":"{}"}}}`))
	if !resp.Allowed || len(resp.Patches) != 0 || len(resp.Warnings) != 1 {
		t.Fatalf("an unmergeable pod: allowed %v, patches %v, warnings %v", resp.Allowed, resp.Patches, resp.Warnings)
	}
}
