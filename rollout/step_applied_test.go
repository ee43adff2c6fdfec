package rollout

import (
	"fmt"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// stepUntil steps the world until cond holds, failing the test if the
// copy is deleted while the data plane still sends the canary traffic,
// or if one step emits two events the events.k8s.io recorder would fold
// into one series (same type, reason and action).
func (w *world) stepUntil(max int, every time.Duration, cond func() bool) {
	w.t.Helper()
	for range max {
		if cond() {
			return
		}
		had := w.copy.Exists
		out := w.step(every)
		if had && !w.copy.Exists && w.acked.weight != 0 {
			w.t.Fatalf("copy deleted while the data plane still applied weight %d (status %s, weight %d)", w.acked.weight, w.status.Phase, w.status.CanaryWeight)
		}
		seen := map[string]string{}
		for _, a := range out.Actions {
			ev, ok := a.(Event)
			if !ok {
				continue
			}
			if ev.Action == "" {
				w.t.Fatalf("event without action: %q", ev.Message)
			}
			key := fmt.Sprint(ev.Warning, ev.Reason, ev.Action)
			if prev, dup := seen[key]; dup {
				w.t.Fatalf("one step emits %q and %q with the same reason and action %q", prev, ev.Message, ev.Action)
			}
			seen[key] = ev.Message
		}
	}
	if !cond() {
		w.t.Fatalf("condition not reached after %d steps: phase %s weight %d", max, w.status.Phase, w.status.CanaryWeight)
	}
}

// The steps that route traffic back to stable and delete the copy in the
// same reconcile must not take the ACK of the previous weight for an ACK
// of weight 0.
func TestStepCopyDeletedAfterStableACK(t *testing.T) {
	t.Run("promotion", func(t *testing.T) {
		w := newWorld(t, weightedSpec())
		w.initialized()
		w.ackDelay = 2
		w.apply("v2")
		w.stepUntil(200, 20*time.Second, w.phase(v1alpha1.PhaseSucceeded))
		if w.copy.Exists {
			t.Fatal("copy left after promotion")
		}
	})
	t.Run("deletion mid-release", func(t *testing.T) {
		w := newWorld(t, weightedSpec())
		w.initialized()
		w.ackDelay = 2
		w.apply("v2")
		w.stepUntil(100, 20*time.Second, func() bool { return w.status.CanaryWeight == 30 && w.traffic().Applied })
		w.deleting, w.revert = true, true
		w.stepUntil(50, time.Second, func() bool { return w.finalized })
	})
	t.Run("template back to stable mid-release", func(t *testing.T) {
		w := newWorld(t, weightedSpec())
		w.initialized()
		w.ackDelay = 2
		w.apply("v2")
		w.stepUntil(100, 20*time.Second, func() bool { return w.status.CanaryWeight == 20 && w.traffic().Applied })
		w.apply("v1")
		w.stepUntil(50, time.Second, func() bool { return !w.copy.Exists })
	})
	t.Run("rollback", func(t *testing.T) {
		w := newWorld(t, weightedSpec())
		w.initialized()
		w.ackDelay = 2
		w.apply("v3")
		w.verdict = func(w *world) Verdict {
			if w.status.CanaryWeight >= 20 {
				return Verdict{Decision: Hold, FailedCheck: true, Message: "Halt podinfo.test advancement success rate 70.00% < 99%"}
			}
			return Verdict{Decision: Promote}
		}
		w.stepUntil(200, 20*time.Second, func() bool { return w.status.Phase == v1alpha1.PhaseFailed && !w.copy.Exists })
	})
}
