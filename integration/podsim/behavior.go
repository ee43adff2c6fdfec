package podsim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
)

// Env variable names read from the app container.
const (
	EnvVersion         = "VERSION"
	EnvMessage         = "MESSAGE"
	EnvErrorRate       = "ERROR_RATE"
	EnvErrorHTTPCode   = "ERROR_HTTP_CODE"
	EnvErrorGRPCCode   = "ERROR_GRPC_CODE"
	EnvLatencyMS       = "LATENCY_MS"
	EnvLatencyJitterMS = "LATENCY_JITTER_MS"
)

// Behavior is how a pod's app answers requests.
type Behavior struct {
	Version string
	Message string
	// ErrorRate is the fraction of app requests that fail, in [0, 1].
	ErrorRate float64
	// ErrorHTTPCode is the status of a failed HTTP request.
	ErrorHTTPCode int
	// ErrorGRPCCode is the code of a failed gRPC call.
	ErrorGRPCCode codes.Code
	// Latency is added to every app request, plus a uniform draw from [0, LatencyJitter).
	Latency       time.Duration
	LatencyJitter time.Duration
}

// Outcome is what happens to one request.
type Outcome struct {
	Delay time.Duration
	Fail  bool
}

// Decide turns two independent uniform draws from [0, 1) into the request's outcome:
// the first decides failure, the second the jitter. It is pure so tests can feed it
// chosen or seeded draws.
func (b Behavior) Decide(failDraw, jitterDraw float64) Outcome {
	return Outcome{
		Fail:  failDraw < b.ErrorRate,
		Delay: b.Latency + time.Duration(jitterDraw*float64(b.LatencyJitter)),
	}
}

// BehaviorFromContainer reads the behaviour env variables of a container, literal
// values only. pod is used for the default message.
func BehaviorFromContainer(c *corev1.Container, pod string) (Behavior, error) {
	return BehaviorFromEnv(LiteralEnv(c).Values, c.Image, pod)
}

// BehaviorFromEnv reads the behaviour from a container's resolved environment. The
// image gives the default version, pod the default message.
func BehaviorFromEnv(env map[string]string, image, pod string) (Behavior, error) {
	b := Behavior{
		Version:       ImageTag(image),
		Message:       "greetings from " + pod,
		ErrorHTTPCode: 500,
		ErrorGRPCCode: codes.Internal,
	}
	if v := strings.TrimSpace(env[EnvVersion]); v != "" {
		b.Version = v
	}
	if v, ok := env[EnvMessage]; ok {
		b.Message = v
	}
	var err error
	if v, ok := env[EnvErrorRate]; ok {
		if b.ErrorRate, err = parseFraction(v); err != nil {
			return Behavior{}, fmt.Errorf("%s: %w", EnvErrorRate, err)
		}
	}
	if v, ok := env[EnvErrorHTTPCode]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 400 || n > 599 {
			return Behavior{}, fmt.Errorf("%s: %q is not an HTTP error status (400..599)", EnvErrorHTTPCode, v)
		}
		b.ErrorHTTPCode = n
	}
	if v, ok := env[EnvErrorGRPCCode]; ok {
		if b.ErrorGRPCCode, err = parseGRPCCode(v); err != nil {
			return Behavior{}, fmt.Errorf("%s: %w", EnvErrorGRPCCode, err)
		}
	}
	if v, ok := env[EnvLatencyMS]; ok {
		if b.Latency, err = parseMillis(v); err != nil {
			return Behavior{}, fmt.Errorf("%s: %w", EnvLatencyMS, err)
		}
	}
	if v, ok := env[EnvLatencyJitterMS]; ok {
		if b.LatencyJitter, err = parseMillis(v); err != nil {
			return Behavior{}, fmt.Errorf("%s: %w", EnvLatencyJitterMS, err)
		}
	}
	return b, nil
}

// ImageTag returns the tag of an image reference, "latest" when it has none.
// A digest is ignored; a registry port ("host:5000/app") is not a tag.
func ImageTag(image string) string {
	ref, _, _ := strings.Cut(image, "@")
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash && colon < len(ref)-1 {
		return ref[colon+1:]
	}
	return "latest"
}

func parseFraction(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
		return 0, fmt.Errorf("%q is not a fraction in [0, 1]", s)
	}
	return f, nil
}

// maxLatency bounds configured delays so a typo cannot hang clients for hours.
const maxLatency = 10 * time.Minute

func parseMillis(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > float64(maxLatency/time.Millisecond) {
		return 0, fmt.Errorf("%q is not a number of milliseconds in [0, %d]", s, maxLatency/time.Millisecond)
	}
	return time.Duration(f * float64(time.Millisecond)), nil
}

// parseGRPCCode accepts a code name in any case ("UNAVAILABLE", "Unavailable") or its
// number; OK is refused since it is not an error.
func parseGRPCCode(s string) (codes.Code, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		if n == 0 || n > uint64(codes.Unauthenticated) {
			return 0, fmt.Errorf("%q is not a gRPC error code (1..16)", s)
		}
		return codes.Code(n), nil
	}
	var c codes.Code
	if err := c.UnmarshalJSON([]byte(strconv.Quote(strings.ToUpper(s)))); err != nil || c == codes.OK {
		return 0, fmt.Errorf("%q is not a gRPC error code name", s)
	}
	return c, nil
}
