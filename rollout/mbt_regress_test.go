package rollout

import (
	"reflect"
	"strings"
	"testing"
)

// simRegressions are shrunk sequences the model-based test found, replayed
// exactly: the configuration, the seed (which fixes how long the world
// takes for ACKs and readiness) and the events. Each must pass every
// invariant; broke names the invariant it broke when it was found.
var simRegressions = []struct {
	name, broke, config string
	seed                uint64
	events              []string
}{
	// A new revision during Promoting: the webhook re-pauses every
	// unpause, promoting() never looks at the newest template, an abort is
	// recorded and ignored, and the phase has no deadline.
	{name: "new revision while promoting keeps traffic on the old copy", broke: "traffic-to-newest", seed: 1000031,
		config: "strategy=canary weights=60,75,80 promotion-step=50 interval=5s deadline=20s threshold=1 hooks=confirm-rollout,confirm-traffic-increase owner=annotations replicas=4",
		events: []string{"t=47s apply v2", "t=72s apply v3"}},
	{name: "new revision while promoting stays Promoting forever", broke: "deadline", seed: 1000025,
		config: "strategy=bluegreen iterations=1 interval=10s deadline=30s threshold=3 hooks=confirm-rollout,confirm-traffic-increase,post-rollout owner=explicit replicas=3",
		events: []string{"t=36s apply v2", "t=52s apply v3"}},
	{name: "abort while promoting is dropped", broke: "action-dropped", seed: 1000150,
		config: "strategy=bluegreen iterations=2 interval=5s deadline=20s threshold=1 hooks=confirm-traffic-increase,confirm-promotion,post-rollout owner=annotations replicas=4",
		events: []string{"t=26s apply v2", "t=43s action abort/1"}},
	// A newer revision restarting a release while confirm-rollout is
	// closed goes to Waiting with the old weight on the old copy.
	{name: "restart into a closed confirm-rollout gate keeps the old weight", broke: "traffic-to-newest", seed: 1000199,
		config: "strategy=canary weights=20,50 interval=5s deadline=20s threshold=1 hooks=confirm-rollout,pre-rollout,rollout,confirm-promotion comparative owner=annotations replicas=2",
		events: []string{"t=5s apply v7", "t=9s hook confirm-rollout closed", "t=13s replace v8"}},
	// Proxies that never ACK: Terminating, Finalising and Initializing wait
	// on them with no deadline.
	{name: "deletion with stalled proxies stays Terminating forever", broke: "deadline", seed: 1000032,
		config: "strategy=abtesting iterations=3 interval=20s deadline=1m20s threshold=1 hooks=confirm-rollout,rollout owner=explicit replicas=1",
		events: []string{"t=124s apply v5", "t=131s stall", "t=167s delete"}},
	{name: "finalising with stalled proxies never ends", broke: "deadline", seed: 1000133,
		config: "strategy=abtesting iterations=3 interval=5s deadline=30s threshold=2 hooks=confirm-rollout,pre-rollout owner=explicit replicas=1",
		events: []string{"t=94s apply v3", "t=99s stall"}},
	{name: "initializing never ends while proxies reject", broke: "deadline", seed: 1000040,
		config: "strategy=canary weights=10,20,40,75 promotion-step=100 interval=20s deadline=2m0s threshold=2 hooks=pre-rollout,confirm-traffic-increase,rollback,post-rollout owner=explicit replicas=4",
		events: []string{"t=0s nack", "t=1s delete"}},
	// The copy is switched to a new revision in the reconcile that sets
	// weight 0, before the proxies applied it: the new pods get the old
	// release's traffic.
	{name: "new revision switches the copy under canary traffic", broke: "copy-under-traffic", seed: 1000003,
		config: "strategy=canary weights=5,20 promotion-step=25 interval=10s deadline=40s threshold=3 hooks=confirm-rollout,rollout mirror owner=annotations replicas=3",
		events: []string{"t=37s apply v5", "t=41s apply v6"}},
	{name: "release after a rollback reuses the copy before weight 0 is applied", broke: "copy-under-traffic", seed: 1020957,
		config: "strategy=canary weights=25,50,60,75 promotion-step=100 interval=5s deadline=25s threshold=1 hooks=pre-rollout,rollout,confirm-promotion,rollback owner=opted-in replicas=2",
		events: []string{"t=15s apply v2", "t=17s verdict Rollback", "t=25s action promote/1", "t=25s apply v3"}},
	// ReleaseTarget drops serin's annotations and unpauses, but the
	// Deployment still has serin.dev/canary: the webhook holds it again.
	{name: "revertOnDeletion is undone by the hold webhook", broke: "given-back", seed: 1000039,
		config: "strategy=canary weights=10,100 promotion-step=50 interval=20s deadline=2m0s threshold=3 hooks=pre-rollout,rollback owner=explicit replicas=3",
		events: []string{"t=37s apply v4", "t=75s delete"}},
	// Found by the first long run after the fixes above. A crash between
	// the rollback's status and its actions lost the pause; an abort in
	// the reconcile that saw the template go back to stable left the
	// Deployment held on its stable revision (the webhook's stable
	// annotation named the aborted one).
	{name: "rollback pause lost in a crash", broke: "failed-state", seed: 1796505166649906081,
		config: "strategy=bluegreen iterations=1 interval=5s deadline=20s threshold=3 hooks=confirm-traffic-increase owner=explicit replicas=1",
		events: []string{"t=64s apply v2", "t=77s nack", "t=93s crash 0"}},
	{name: "abort with a revert to stable during promotion stays held", broke: "liveness", seed: 1796505166649834156,
		config: "strategy=canary weights=40 interval=10s deadline=50s threshold=3 hooks=confirm-promotion owner=annotations replicas=4",
		events: []string{"t=19s apply v2", "t=40s action abort/1", "t=40s apply v1"}},
	{name: "a new revision after the promoted one started rolling out marks the promoted one failed", broke: "failed-state", seed: 1796506392866214958,
		config: "strategy=canary weights=50 interval=5s deadline=25s threshold=2 hooks=confirm-rollout,rollout,confirm-traffic-increase skip-analysis owner=annotations replicas=4",
		events: []string{"t=59s apply v2", "t=65s nack", "t=182s apply v3", "t=192s apply v2", "t=199s apply v3"}},
	// Manual actions recorded as handled and neither acted on nor refused.
	{name: "abort with a new revision in the same reconcile is dropped", broke: "action-dropped", seed: 267,
		config: "strategy=canary weights=5,40,50 interval=20s deadline=1m0s threshold=3 hooks=pre-rollout,confirm-promotion owner=annotations replicas=4",
		events: []string{"t=13s apply v5", "t=15s stall", "t=33s action abort/1", "t=33s apply v6"}},
	{name: "promote with a revert in the same reconcile is dropped", broke: "action-dropped", seed: 1000340,
		config: "strategy=canary weights=10,25,80 interval=20s deadline=1m20s threshold=3 hooks=confirm-rollout,pre-rollout comparative owner=annotations replicas=2",
		events: []string{"t=35s apply v2", "t=36s apply v1", "t=36s action promote/3"}},
	{name: "abort while finalising is dropped", broke: "action-dropped", seed: 1002777,
		config: "strategy=abtesting iterations=3 interval=10s deadline=1m0s threshold=1 hooks=rollback owner=opted-in replicas=2",
		events: []string{"t=61s apply v3", "t=103s action abort/2"}},
	{name: "abort between releases is dropped", broke: "action-dropped", seed: 1000001,
		config: "strategy=abtesting iterations=1 interval=5s deadline=20s threshold=1 hooks=rollout,confirm-traffic-increase,confirm-promotion owner=annotations replicas=4",
		events: []string{"t=40s action abort/1"}},
	{name: "promote between releases is dropped", broke: "action-dropped", seed: 1000054,
		config: "strategy=canary weights=5,100 interval=10s deadline=1m0s threshold=1 hooks=pre-rollout,confirm-promotion,rollback comparative owner=annotations replicas=4",
		events: []string{"t=69s action promote/2"}},
	{name: "retry outside Failed is dropped", broke: "action-dropped", seed: 1000004,
		config: "strategy=canary weights=30,40,80,100 promotion-step=100 interval=10s deadline=1m0s threshold=3 hooks=confirm-rollout,confirm-traffic-increase,post-rollout owner=annotations replicas=3",
		events: []string{"t=146s action retry/2"}},
	{name: "retry after the template went back to stable is dropped", broke: "action-dropped", seed: 1001905,
		config: "strategy=canary weights=80 interval=5s deadline=20s threshold=1 hooks=confirm-rollout,rollout owner=annotations replicas=4",
		events: []string{"t=62s hook rollout closed", "t=72s apply v2", "t=125s apply v1", "t=129s action retry/2"}},
	{name: "unknown action verb is dropped", broke: "action-dropped", seed: 1000013,
		config: "strategy=bluegreen iterations=1 interval=10s deadline=1m0s threshold=2 hooks=rollout,rollback comparative owner=opted-in replicas=1",
		events: []string{"t=148s action pause/1"}},
}

func TestModelRegressions(t *testing.T) {
	for _, tt := range simRegressions {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(tt.config)
			if err != nil {
				t.Fatal(err)
			}
			events, err := parseEvents(tt.events)
			if err != nil {
				t.Fatal(err)
			}
			var trace strings.Builder
			for _, v := range runTraced(cfg, tt.seed, events, &trace) {
				t.Errorf("%s", v)
			}
			switch {
			case *flagTrace:
				t.Logf("config: %s\nevents:\n  %s\ntrace:\n%s", tt.config, strings.Join(tt.events, "\n  "), trace.String())
			case t.Failed():
				t.Logf("found as %s; events:\n  %s\n(-mbt.trace prints every reconcile)", tt.broke, strings.Join(tt.events, "\n  "))
			}
		})
	}
}

// TestModelReplayRoundTrip checks that configurations and events print
// and parse back unchanged, so printed failures replay exactly.
func TestModelReplayRoundTrip(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		cfg, events := sequence(seed)
		got, err := parseConfig(cfg.String())
		if err != nil || got.String() != cfg.String() || !reflect.DeepEqual(got.spec(), cfg.spec()) {
			t.Fatalf("seed %d: config %q parses back as %q (%v)", seed, cfg, got, err)
		}
		for _, e := range events {
			back, err := parseEvent(e.String())
			if err != nil || back != e {
				t.Fatalf("seed %d: event %q parses back as %q (%v)", seed, e, back, err)
			}
		}
	}
}
