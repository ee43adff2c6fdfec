package app

import (
	"testing"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout"
)

// TestDecisionCoversEveryVerdict maps every verdict analysis can give to a
// distinct engine decision, and refuses anything else.
func TestDecisionCoversEveryVerdict(t *testing.T) {
	seen := map[rollout.Decision]analysis.Verdict{}
	for _, v := range analysis.Verdicts {
		d, err := decision(v)
		if err != nil {
			t.Fatalf("verdict %s: %v", v, err)
		}
		if prev, dup := seen[d]; dup {
			t.Errorf("verdicts %s and %s both map to %s", prev, v, d)
		}
		seen[d] = v
		if string(d) != string(v) {
			t.Errorf("verdict %s maps to %s; events and status use the same word", v, d)
		}
	}
	if len(seen) != len(rollout.Decisions) {
		t.Errorf("%d verdicts cover %d of the engine's %d decisions", len(analysis.Verdicts), len(seen), len(rollout.Decisions))
	}
	if _, err := decision("Maybe"); err == nil {
		t.Error("an unknown verdict was accepted")
	}
}
