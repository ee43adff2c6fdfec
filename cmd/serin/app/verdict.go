package app

import (
	"fmt"

	"github.com/serin-dev/serin/analysis"
	"github.com/serin-dev/serin/rollout"
)

// decision is the engine's word for an analysis verdict.
func decision(v analysis.Verdict) (rollout.Decision, error) {
	switch v {
	case analysis.Promote:
		return rollout.Promote, nil
	case analysis.Hold:
		return rollout.Hold, nil
	case analysis.Rollback:
		return rollout.Rollback, nil
	case analysis.NoData:
		return rollout.NoData, nil
	}
	return "", fmt.Errorf("analysis verdict %q has no engine decision", v)
}
