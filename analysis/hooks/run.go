package hooks

import (
	"context"
	"fmt"
	"strconv"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Outcome is the result of running the hooks of one type.
type Outcome struct {
	Type    v1alpha1.HookType
	Results []Result
	// Passed: every hook called answered 2xx (true when there are none).
	// For gates it means open, for checks passed.
	Passed bool
	// Rollback: a rollback hook answered 2xx.
	Rollback bool
	// Message is an event and log line in Flagger's words, with each
	// failure's class (never a response body or status code), safe to
	// store in the Canary's status; empty when there is nothing to say.
	Message string
}

// Of returns the hooks of a type, in spec order (no type is rollout).
func Of(hooks []v1alpha1.CanaryWebhook, typ v1alpha1.HookType) []v1alpha1.CanaryWebhook {
	var out []v1alpha1.CanaryWebhook
	for _, h := range hooks {
		if hookType(h) == typ {
			out = append(out, h)
		}
	}
	return out
}

// Run calls the hooks of one type in spec order with that type's
// semantics:
//
//   - confirm-*: stops at the first hook that does not answer 2xx; Passed
//     is false (keep waiting) and Message says which gate is closed;
//   - pre-rollout, rollout: stops at the first failure; Passed false is a
//     failed check;
//   - rollback: stops at the first 2xx, which sets Rollback;
//   - post-rollout: calls every hook; failures are in Message.
//
// Event hooks go through Event, which adds the event's message.
func (c *Caller) Run(ctx context.Context, rel Release, hooks []v1alpha1.CanaryWebhook, typ v1alpha1.HookType) Outcome {
	o := Outcome{Type: typ, Passed: true}
	for _, h := range Of(hooks, typ) {
		r := c.Call(ctx, rel, h)
		o.Results = append(o.Results, r)
		if !r.OK {
			o.Passed = false
		}
		switch typ {
		case v1alpha1.HookRollback:
			if r.OK {
				o.Rollback = true
				o.Message = fmt.Sprintf("Rolling back %s manual webhook %s invoked", rel.target(), h.Name)
				return o
			}
		case v1alpha1.HookPostRollout, v1alpha1.HookEvent:
			if !r.OK {
				o.addFailure(failurePrefix(typ, rel, h.Name), r)
			}
		default:
			if !r.OK {
				o.addFailure(failurePrefix(typ, rel, h.Name), r)
				return o
			}
		}
	}
	return o
}

func failurePrefix(typ v1alpha1.HookType, rel Release, hook string) string {
	t := rel.target()
	switch typ {
	case v1alpha1.HookConfirmRollout:
		return fmt.Sprintf("Halt %s advancement waiting for approval %s", t, hook)
	case v1alpha1.HookConfirmTrafficIncrease:
		return fmt.Sprintf("Halt %s advancement waiting for traffic increase approval %s", t, hook)
	case v1alpha1.HookConfirmPromotion:
		return fmt.Sprintf("Halt %s advancement waiting for promotion approval %s", t, hook)
	case v1alpha1.HookPreRollout:
		return fmt.Sprintf("Halt %s advancement pre-rollout check %s failed", t, hook)
	case v1alpha1.HookPostRollout:
		return fmt.Sprintf("Post-rollout hook %s for %s failed", hook, t)
	case v1alpha1.HookEvent:
		return fmt.Sprintf("Event hook %s for %s failed", hook, t)
	default:
		return fmt.Sprintf("Halt %s advancement external check %s failed", t, hook)
	}
}

func (o *Outcome) addFailure(prefix string, r Result) {
	join := func(a, b string) string {
		if a == "" {
			return b
		}
		return a + "; " + b
	}
	o.Message = join(o.Message, prefix+": "+r.Reason())
}

// Event sends an event to every event hook, with Flagger's metadata
// (eventMessage, eventType, timestamp in Unix milliseconds) merged over
// the hook's own metadata, which cannot override them. Failures are
// reported in the Outcome only.
func (c *Caller) Event(ctx context.Context, rel Release, hooks []v1alpha1.CanaryWebhook, message, eventType string) Outcome {
	o := Outcome{Type: v1alpha1.HookEvent, Passed: true}
	meta := map[string]string{
		MetaEventMessage: message,
		MetaEventType:    eventType,
		MetaTimestamp:    strconv.FormatInt(c.opts.Now().UnixMilli(), 10),
	}
	for _, h := range Of(hooks, v1alpha1.HookEvent) {
		r := c.call(ctx, rel, h, meta)
		o.Results = append(o.Results, r)
		if !r.OK {
			o.Passed = false
			o.addFailure(failurePrefix(v1alpha1.HookEvent, rel, h.Name), r)
		}
	}
	return o
}
