package admission

import (
	"encoding/json"
	"testing"
)

func TestBootstrapPod(t *testing.T) {
	tests := []struct {
		name string
		pod  string
		want string // the JSON patch, "" for none
	}{
		{"no annotations", `{"metadata":{"name":"p"}}`,
			`[{"op":"add","path":"/metadata/annotations","value":{"sidecar.istio.io/bootstrapOverride":"serin-xds-bootstrap"}}]`},
		{"other annotations", `{"metadata":{"name":"p","annotations":{"a":"b"}}}`,
			`[{"op":"add","path":"/metadata/annotations/sidecar.istio.io~1bootstrapOverride","value":"serin-xds-bootstrap"}]`},
		{"own override kept", `{"metadata":{"name":"p","annotations":{"sidecar.istio.io/bootstrapOverride":"mine"}}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := bootstrapPod([]byte(tt.pod), "serin-xds-bootstrap")
			if !resp.Allowed {
				t.Fatalf("denied: %v", resp.Result)
			}
			got := ""
			if len(resp.Patches) > 0 {
				b, err := json.Marshal(resp.Patches)
				if err != nil {
					t.Fatal(err)
				}
				got = string(b)
			}
			if got != tt.want {
				t.Fatalf("patch %s, want %s", got, tt.want)
			}
		})
	}
}
