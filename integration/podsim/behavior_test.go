package podsim

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
)

func TestImageTag(t *testing.T) {
	for image, want := range map[string]string{
		"nginx":                                  "latest",
		"nginx:1.27":                             "1.27",
		"ghcr.io/stefanprodan/podinfo:6.0.1":     "6.0.1",
		"localhost:5000/app":                     "latest",
		"localhost:5000/app:v2":                  "v2",
		"app:v3@sha256:0123456789abcdef":         "v3",
		"registry:5000/app@sha256:0123456789abc": "latest",
		"app:":                                   "latest",
		"":                                       "latest",
	} {
		if got := ImageTag(image); got != want {
			t.Errorf("ImageTag(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestBehaviorFromContainerDefaults(t *testing.T) {
	c := &corev1.Container{Image: "podinfo:6.1.0"}
	got, err := BehaviorFromContainer(c, "p-1")
	if err != nil {
		t.Fatal(err)
	}
	want := Behavior{Version: "6.1.0", Message: "greetings from p-1", ErrorHTTPCode: 500, ErrorGRPCCode: codes.Internal}
	if got != want {
		t.Errorf("behavior = %+v, want %+v", got, want)
	}
}

func TestBehaviorFromContainerEnv(t *testing.T) {
	c := &corev1.Container{Image: "podinfo:6.1.0", Env: []corev1.EnvVar{
		{Name: EnvVersion, Value: " v2 "},
		{Name: EnvMessage, Value: ""},
		{Name: EnvErrorRate, Value: "0.25"},
		{Name: EnvErrorHTTPCode, Value: "503"},
		{Name: EnvErrorGRPCCode, Value: "unavailable"},
		{Name: EnvLatencyMS, Value: "12.5"},
		{Name: EnvLatencyJitterMS, Value: "30"},
		// Values from references are not resolved, and do not override.
		{Name: "OTHER", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}}
	got, err := BehaviorFromContainer(c, "p-1")
	if err != nil {
		t.Fatal(err)
	}
	want := Behavior{
		Version: "v2", Message: "", ErrorRate: 0.25, ErrorHTTPCode: 503, ErrorGRPCCode: codes.Unavailable,
		Latency: 12500 * time.Microsecond, LatencyJitter: 30 * time.Millisecond,
	}
	if got != want {
		t.Errorf("behavior = %+v\nwant %+v", got, want)
	}

	c.Env = []corev1.EnvVar{{Name: EnvErrorGRPCCode, Value: "14"}, {Name: EnvVersion, Value: ""}}
	got, err = BehaviorFromContainer(c, "p-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ErrorGRPCCode != codes.Unavailable || got.Version != "6.1.0" {
		t.Errorf("numeric code / empty VERSION: got %+v", got)
	}
}

func TestBehaviorFromContainerErrors(t *testing.T) {
	for _, env := range [][2]string{
		{EnvErrorRate, "abc"}, {EnvErrorRate, "-0.1"}, {EnvErrorRate, "1.01"}, {EnvErrorRate, "NaN"},
		{EnvErrorHTTPCode, "200"}, {EnvErrorHTTPCode, "600"}, {EnvErrorHTTPCode, "x"},
		{EnvErrorGRPCCode, "OK"}, {EnvErrorGRPCCode, "0"}, {EnvErrorGRPCCode, "17"}, {EnvErrorGRPCCode, "BROKEN"},
		{EnvLatencyMS, "-1"}, {EnvLatencyMS, "fast"}, {EnvLatencyMS, "600001"}, {EnvLatencyJitterMS, "Inf"},
	} {
		c := &corev1.Container{Env: []corev1.EnvVar{{Name: env[0], Value: env[1]}}}
		if _, err := BehaviorFromContainer(c, "p"); err == nil || !strings.Contains(err.Error(), env[0]) {
			t.Errorf("%s=%q: err = %v, want an error naming the variable", env[0], env[1], err)
		}
	}
}

func TestDecide(t *testing.T) {
	b := Behavior{ErrorRate: 0.2, Latency: 10 * time.Millisecond, LatencyJitter: 40 * time.Millisecond}
	tests := []struct {
		fail, jitter float64
		want         Outcome
	}{
		{0, 0, Outcome{Fail: true, Delay: 10 * time.Millisecond}},
		{0.1999, 0.5, Outcome{Fail: true, Delay: 30 * time.Millisecond}},
		{0.2, 0.25, Outcome{Fail: false, Delay: 20 * time.Millisecond}},
		{0.9999, 0.9999, Outcome{Fail: false, Delay: 10*time.Millisecond + time.Duration(0.9999*float64(40*time.Millisecond))}},
	}
	for _, tt := range tests {
		if got := b.Decide(tt.fail, tt.jitter); got != tt.want {
			t.Errorf("Decide(%v, %v) = %+v, want %+v", tt.fail, tt.jitter, got, tt.want)
		}
	}
	if (Behavior{ErrorRate: 1}).Decide(0.99999, 0).Fail != true {
		t.Error("ERROR_RATE=1 must always fail")
	}
	if (Behavior{ErrorRate: 0}).Decide(0, 0).Fail != false {
		t.Error("ERROR_RATE=0 must never fail")
	}
}

// TestDecideStatistics checks that failures and jitter follow the configured
// distribution: the failure count is binomial and must land within 5 standard
// deviations; the mean jitter must be within 5 standard errors of half the jitter.
func TestDecideStatistics(t *testing.T) {
	const n = 20000
	draw := seeded(42)
	for _, rate := range []float64{0, 0.01, 0.1, 0.5, 0.9, 1} {
		b := Behavior{ErrorRate: rate, LatencyJitter: 100 * time.Millisecond}
		fails := 0
		var delaySum float64
		for range n {
			o := b.Decide(draw(), draw())
			if o.Fail {
				fails++
			}
			if o.Delay < 0 || o.Delay >= b.LatencyJitter {
				t.Fatalf("delay %v outside [0, %v)", o.Delay, b.LatencyJitter)
			}
			delaySum += float64(o.Delay) / float64(time.Millisecond)
		}
		sd := math.Sqrt(n * rate * (1 - rate))
		if got := float64(fails); math.Abs(got-n*rate) > 5*sd+0.5 {
			t.Errorf("rate %v: %d failures of %d, want %v ± %.1f", rate, fails, n, n*rate, 5*sd)
		}
		// Uniform [0, 100) ms: mean 50, standard deviation 100/sqrt(12).
		mean, se := delaySum/n, 100/math.Sqrt(12)/math.Sqrt(n)
		if math.Abs(mean-50) > 5*se {
			t.Errorf("rate %v: mean jitter %.2fms, want 50 ± %.2f", rate, mean, 5*se)
		}
	}
}
