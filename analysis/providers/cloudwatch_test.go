package providers

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/encoding/cbor"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// cloudWatchAnswer encodes a GetMetricData answer in the CBOR of AWS's
// RPCv2 protocol, which the SDK speaks.
func cloudWatchAnswer(values ...float64) (int, string, string) {
	vs := cbor.List{}
	for _, v := range values {
		vs = append(vs, cbor.Float64(v))
	}
	out := cbor.Map{"MetricDataResults": cbor.List{cbor.Map{"Id": cbor.String("e1"), "Label": cbor.String("errors"),
		"StatusCode": cbor.String("Complete"), "Values": vs}}}
	return http.StatusOK, "application/cbor", string(cbor.Encode(out))
}

func TestCloudWatch(t *testing.T) {
	var answer []float64
	api := newFakeAPI(t, func(seen) (int, string, string) { return cloudWatchAnswer(answer...) })
	answer = []float64{4.5, 3}
	f := &Factory{Egress: loopback, AWSCredentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI", "")}
	p := &v1alpha1.MetricProvider{Type: v1alpha1.ProviderCloudWatch, Region: "eu-west-1", Address: api.URL,
		Headers: map[string][]string{"X-Trace": {"on"}}}
	query := `[{"Id":"e1","Expression":"m1 / m2","Label":"errors"},
	  {"Id":"m1","MetricStat":{"Metric":{"Namespace":"MyKubernetesCluster","MetricName":"ErrorCount",
	    "Dimensions":[{"Name":"appName","Value":"podinfo"}]},"Period":60,"Stat":"Sum","Unit":"Count"},"ReturnData":false},
	  {"Id":"m2","MetricStat":{"Metric":{"Namespace":"MyKubernetesCluster","MetricName":"RequestCount",
	    "Dimensions":[{"Name":"appName","Value":"podinfo"}]},"Period":60,"Stat":"Sum","Unit":"Count"},"ReturnData":false}]`
	check(t, f, p, query, 4.5, "")
	r := api.last(t)
	if r.Method != http.MethodPost || !strings.HasSuffix(r.Path, "/operation/GetMetricData") {
		t.Errorf("request %s %s, want POST …/operation/GetMetricData", r.Method, r.Path)
	}
	if a := r.Header.Get("Authorization"); !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") ||
		!strings.Contains(a, "/eu-west-1/monitoring/aws4_request") {
		t.Errorf("Authorization = %q, want a SigV4 signature for monitoring in eu-west-1", a)
	}
	if r.Header.Get("X-Trace") != "on" {
		t.Errorf("headers = %v", r.Header)
	}
	in, err := cbor.Decode(r.Body)
	if err != nil {
		t.Fatalf("request body is not CBOR: %v", err)
	}
	m, _ := in.(cbor.Map)
	qs, _ := m["MetricDataQueries"].(cbor.List)
	if len(qs) != 3 {
		t.Fatalf("MetricDataQueries = %#v, want the template's three", m["MetricDataQueries"])
	}
	first, _ := qs[0].(cbor.Map)
	if first["Id"] != cbor.String("e1") || first["Expression"] != cbor.String("m1 / m2") {
		t.Errorf("first query = %#v", first)
	}
	start, _ := m["StartTime"].(*cbor.Tag)
	stop, _ := m["EndTime"].(*cbor.Tag)
	if start == nil || stop == nil || epoch(t, stop.Value)-epoch(t, start.Value) != 300 || epoch(t, stop.Value) != float64(end.Unix()) {
		t.Errorf("StartTime, EndTime = %#v, %#v; want the 5m window ending at %v", m["StartTime"], m["EndTime"], end)
	}
	answer = nil
	check(t, f, p, query, 0, "no data")
	api.set(http.StatusBadRequest, "application/cbor", string(cbor.Encode(cbor.Map{
		"__type": cbor.String("com.amazonaws.cloudwatch#InvalidParameterValueException"), "message": cbor.String("bad Period")})))
	check(t, f, p, query, 0, "GetMetricData failed: InvalidParameterValue")
	check(t, f, p, `{"Id":"e1"}`, 0, "JSON array of MetricDataQueries")
	check(t, f, &v1alpha1.MetricProvider{Type: v1alpha1.ProviderCloudWatch}, query, 0, "no region")
}

func epoch(t *testing.T, v cbor.Value) float64 {
	t.Helper()
	switch x := v.(type) {
	case cbor.Uint:
		return float64(x)
	case cbor.Float64:
		return float64(x)
	case cbor.Float32:
		return float64(x)
	}
	t.Fatalf("timestamp %#v is not a number", v)
	return 0
}
