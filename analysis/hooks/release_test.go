package hooks

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func TestReleaseOf(t *testing.T) {
	c := &v1alpha1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test"},
		Status:     v1alpha1.CanaryStatus{Phase: v1alpha1.PhaseProgressing, CanaryRevision: "7d9f8b", StableRevision: "5c6d7e"},
	}
	want := Release{Name: "podinfo", Namespace: "test", Phase: v1alpha1.PhaseProgressing, Checksum: "7d9f8b"}
	if got := ReleaseOf(c); got != want {
		t.Errorf("ReleaseOf = %+v, want %+v", got, want)
	}
}

func TestOutcomeDetail(t *testing.T) {
	ok := func(hook string) Result { return Result{Hook: hook, StatusCode: 200, OK: true} }
	failed := func(hook string, code int) Result {
		return Result{Hook: hook, StatusCode: code}
	}
	noAnswer := Result{Hook: "load", Err: "timeout after 10s"}
	for _, tc := range []struct {
		name     string
		results  []Result
		rollback bool
		want     string
	}{
		{"no hooks", nil, false, ""},
		{"no hooks, rollback", nil, true, ""},
		{"all passed", []Result{ok("smoke"), ok("load")}, false, ""},
		{"one failed", []Result{ok("smoke"), failed("acceptance", 500)}, false, "acceptance: server error (5xx)"},
		{"two failed", []Result{failed("smoke", 403), noAnswer}, false, "smoke: rejected (4xx); load: timeout after 10s"},
		{"rollback asked", []Result{failed("gate", 404), ok("manual")}, true, "manual"},
		{"rollback asked twice", []Result{ok("a"), ok("b")}, true, "a; b"},
		{"no rollback asked", []Result{failed("gate", 404), noAnswer}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Outcome{Results: tc.results}).Detail(tc.rollback); got != tc.want {
				t.Errorf("Detail(%v) = %q, want %q", tc.rollback, got, tc.want)
			}
		})
	}
}
