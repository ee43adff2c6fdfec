package build

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestTrimPodBuildsTheSameRelease: every golden case builds the same
// release from trimmed pods as from whole ones, so the cache can hold the
// trimmed pods only; and a trimmed pod no longer carries what serin does
// not read.
func TestTrimPodBuildsTheSameRelease(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no cases in testdata/in: %v", err)
	}
	pods := 0
	for _, in := range inputs {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".yaml"), func(t *testing.T) {
			whole := readInput(t, in)
			trimmed := readInput(t, in)
			for i := range trimmed.Pods {
				got, err := TrimPod(&trimmed.Pods[i])
				if err != nil {
					t.Fatal(err)
				}
				trimmed.Pods[i] = *got.(*corev1.Pod)
				for _, c := range trimmed.Pods[i].Spec.Containers {
					if c.Image != "" || len(c.Env) > 0 || len(c.VolumeMounts) > 0 {
						t.Errorf("pod %s: container %s keeps what serin does not read", trimmed.Pods[i].Name, c.Name)
					}
				}
				pods++
			}
			if a, b := render(t, whole), render(t, trimmed); !bytes.Equal(a, b) {
				t.Errorf("trimmed pods build\n%s\nwhole pods build\n%s", b, a)
			}
		})
	}
	if pods == 0 {
		t.Fatal("no golden case has pods")
	}
	if svc, err := TrimPod(&corev1.Service{}); err != nil || svc == nil {
		t.Errorf("a Service is not returned as it is: %v %v", svc, err)
	}
}
