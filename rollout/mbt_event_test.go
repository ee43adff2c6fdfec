package rollout

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// simEvent is one change of the world's inputs, At seconds after the
// Canary was initialized. Its text form, "t=12s apply v3", is what failures
// print and what regression tables replay:
//
//	apply vN          the user applies pod template vN (kubectl apply)
//	replace vN        the same through a replace that drops serin's revision
//	                  annotations and spec.paused
//	scale N           the user scales the Deployment to N replicas
//	hook TYPE open    the hooks of TYPE pass (for rollback: ask to roll back)
//	hook TYPE closed  they fail (rollback: do not ask)
//	gates open        every gate passes and the rollback hook stays quiet
//	verdict V         analysis answers V from now on: Promote, PromoteEarly,
//	                  Hold, HoldFailed, Rollback, NoData or Error
//	action VERB/N     the serin.dev/action annotation is set to VERB/N
//	pause, resume     the serin.dev/paused annotation is set, removed
//	nack              the proxies reject the traffic now served
//	stall, recover    the proxies stop and resume ACKing
//	restart           serin restarts between two reconciles
//	crash N           serin dies after the first N actions of the next reconcile
//	delete            the Canary is deleted
//	opt-out           the user removes serin.dev/canary from the Deployment
type simEvent struct {
	At  int
	Op  string
	Arg string
}

func (e simEvent) String() string {
	if e.Arg == "" {
		return fmt.Sprintf("t=%ds %s", e.At, e.Op)
	}
	return fmt.Sprintf("t=%ds %s %s", e.At, e.Op, e.Arg)
}

// parseEvent reads what simEvent.String writes.
func parseEvent(s string) (simEvent, error) {
	f := strings.Fields(s)
	if len(f) < 2 || !strings.HasPrefix(f[0], "t=") || !strings.HasSuffix(f[0], "s") {
		return simEvent{}, fmt.Errorf("event %q: want \"t=<seconds>s <op> [arg]\"", s)
	}
	at, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(f[0], "t="), "s"))
	if err != nil {
		return simEvent{}, fmt.Errorf("event %q: %w", s, err)
	}
	return simEvent{At: at, Op: f[1], Arg: strings.Join(f[2:], " ")}, nil
}

func parseEvents(lines []string) ([]simEvent, error) {
	out := make([]simEvent, 0, len(lines))
	for _, l := range lines {
		e, err := parseEvent(l)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// simVerdicts are the analysis answers a sequence may switch between.
var simVerdicts = []string{"Promote", "Promote", "Promote", "PromoteEarly", "Hold", "HoldFailed", "Rollback", "NoData", "Error"}

// eventGen draws the events of one sequence.
type eventGen struct {
	r    *rand.Rand
	cfg  simConfig
	revs int // revisions applied so far (v1 is running)
	n    int // nonce of the last manual action
}

// randomEvents draws a few to a few dozen events over a horizon of up to
// five minutes, sorted by time, and sometimes settles the inputs at the
// end (gates open, proxies healthy, analysis passing).
func randomEvents(r *rand.Rand, cfg simConfig) []simEvent {
	g := &eventGen{r: r, cfg: cfg, revs: 1}
	horizon := 20 + r.IntN(280)
	times := make([]int, 1+r.IntN(20))
	for i := range times {
		times[i] = r.IntN(horizon)
	}
	slices.Sort(times)
	var out []simEvent
	for _, at := range times {
		op, arg := g.next()
		out = append(out, simEvent{At: at, Op: op, Arg: arg})
	}
	return append(out, g.settle(horizon)...)
}

func (g *eventGen) settle(at int) []simEvent {
	var out []simEvent
	if g.r.IntN(10) < 6 {
		out = append(out, simEvent{At: at, Op: "gates", Arg: "open"})
	}
	if g.r.IntN(10) < 6 {
		out = append(out, simEvent{At: at, Op: "recover"})
	}
	if g.r.IntN(10) < 5 {
		out = append(out, simEvent{At: at, Op: "verdict", Arg: "Promote"})
	}
	return out
}

// next draws one event.
func (g *eventGen) next() (op, arg string) {
	r := g.r
	switch p := r.IntN(100); {
	case p < 22:
		g.revs++
		return "apply", fmt.Sprintf("v%d", g.revs)
	case p < 27:
		return "apply", fmt.Sprintf("v%d", 1+r.IntN(g.revs))
	case p < 30 && g.cfg.Owner != "opted-in":
		g.revs++
		return "replace", fmt.Sprintf("v%d", g.revs)
	case p < 32:
		return "scale", strconv.Itoa(1 + r.IntN(4))
	case p < 44 && len(g.cfg.Hooks) > 0:
		return "hook", fmt.Sprintf("%s %s", g.cfg.Hooks[r.IntN(len(g.cfg.Hooks))], []string{"open", "closed"}[r.IntN(2)])
	case p < 47:
		return "gates", "open"
	case p < 58:
		return "verdict", simVerdicts[r.IntN(len(simVerdicts))]
	case p < 65:
		g.n++
		verbs := []string{v1alpha1.ActionPromote, v1alpha1.ActionAbort, v1alpha1.ActionRetry, v1alpha1.ActionPromote, v1alpha1.ActionAbort, v1alpha1.ActionRetry, "pause", "resume"}
		return "action", fmt.Sprintf("%s/%d", verbs[r.IntN(len(verbs))], g.n)
	case p < 69:
		return []string{"pause", "resume"}[r.IntN(2)], ""
	}
	return g.infra()
}

// infra draws an event of the data plane, of serin itself or an end.
func (g *eventGen) infra() (op, arg string) {
	switch p := g.r.IntN(100); {
	case p < 15:
		return "nack", ""
	case p < 35:
		return "stall", ""
	case p < 55:
		return "recover", ""
	case p < 70:
		return "restart", ""
	case p < 85:
		return "crash", strconv.Itoa(g.r.IntN(3))
	case p < 95 || g.cfg.Owner != "annotations":
		return "delete", ""
	}
	return "opt-out", ""
}
