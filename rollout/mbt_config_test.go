package rollout

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// simConfig is the Canary of one model-based sequence: the release shape,
// its hooks and who owns the Canary. It prints as one line of key=value
// words and parses back, so a shrunk sequence can be pasted into a table.
type simConfig struct {
	Strategy      v1alpha1.Strategy
	Weights       []int32 // canary strategy only
	Iterations    int32   // blue/green and A/B only
	Mirror        bool
	PromotionStep int32
	Interval      time.Duration
	Deadline      time.Duration
	Threshold     int32
	Hooks         []v1alpha1.HookType
	SkipAnalysis  bool
	Comparative   bool
	// Owner says who made the Canary: "annotations" (serin, from the
	// Deployment's annotations), "opted-in" (applied by hand; serin
	// opted the Deployment in) or "explicit" (applied by hand with
	// revertOnDeletion; the user annotated the Deployment).
	Owner    string
	Replicas int32
}

// simHookTypes are the hook types a sequence may use.
var simHookTypes = []v1alpha1.HookType{
	v1alpha1.HookConfirmRollout, v1alpha1.HookPreRollout, v1alpha1.HookRollout,
	v1alpha1.HookConfirmTrafficIncrease, v1alpha1.HookConfirmPromotion,
	v1alpha1.HookRollback, v1alpha1.HookPostRollout,
}

// randomConfig draws a Canary that a correct engine releases within the
// liveness bound: at most four weights, three iterations, four
// promotion steps and three failed checks.
func randomConfig(r *rand.Rand) simConfig {
	c := simConfig{Strategy: v1alpha1.StrategyCanary, Owner: "annotations"}
	switch p := r.IntN(10); {
	case p < 2:
		c.Strategy, c.Iterations = v1alpha1.StrategyBlueGreen, 1+r.Int32N(3)
	case p < 4:
		c.Strategy, c.Iterations = v1alpha1.StrategyABTesting, 1+r.Int32N(3)
	default:
		c.Weights = randomWeights(r)
		c.PromotionStep = []int32{0, 0, 0, 25, 50, 100}[r.IntN(6)]
	}
	c.Mirror = c.Strategy != v1alpha1.StrategyABTesting && r.IntN(4) == 0
	c.Interval = []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second}[r.IntN(3)]
	c.Deadline = max(20*time.Second, c.Interval*time.Duration(3+r.IntN(4)))
	c.Threshold = 1 + r.Int32N(3)
	for _, h := range simHookTypes {
		if r.IntN(10) < 3 {
			c.Hooks = append(c.Hooks, h)
		}
	}
	c.SkipAnalysis = r.IntN(12) == 0
	c.Comparative = r.IntN(5) == 0
	switch p := r.IntN(4); {
	case p == 1:
		c.Owner = "opted-in"
	case p == 2:
		c.Owner = "explicit"
	}
	c.Replicas = 1 + r.Int32N(4)
	return c
}

func randomWeights(r *rand.Rand) []int32 {
	pool := []int32{5, 10, 20, 25, 30, 40, 50, 60, 75, 80, 100}
	n := 1 + r.IntN(4)
	var out []int32
	for _, i := range r.Perm(len(pool))[:n] {
		out = append(out, pool[i])
	}
	slices.Sort(out)
	return out
}

// spec is the effective, defaulted Canary spec of the configuration.
func (c simConfig) spec() *v1alpha1.CanarySpec {
	a := &v1alpha1.CanaryAnalysis{
		Interval: c.Interval.String(), Threshold: c.Threshold, Iterations: c.Iterations,
		StepWeights: slices.Clone(c.Weights), StepWeightPromotion: c.PromotionStep,
		Mirror: c.Mirror, Metrics: v1alpha1.DefaultMetrics(),
	}
	if c.Strategy == v1alpha1.StrategyABTesting {
		a.Match = []v1alpha1.HTTPMatchRequest{{Headers: map[string]v1alpha1.StringMatch{"x-canary": {Exact: "insider"}}}}
	}
	for _, h := range c.Hooks {
		a.Webhooks = append(a.Webhooks, v1alpha1.CanaryWebhook{Name: string(h), Type: h, URL: "http://tester/" + string(h)})
	}
	spec := &v1alpha1.CanarySpec{
		TargetRef:               v1alpha1.LocalObjectReference{Name: simName},
		ProgressDeadlineSeconds: ptr.To(int32(c.Deadline / time.Second)),
		SkipAnalysis:            c.SkipAnalysis,
		RevertOnDeletion:        c.Owner == "explicit",
		Analysis:                a,
	}
	if c.Comparative {
		spec.Judge = &v1alpha1.Judge{Kind: v1alpha1.JudgeComparative}
	}
	v1alpha1.SetDefaults(spec)
	return spec
}

func (c simConfig) hasHook(h v1alpha1.HookType) bool { return slices.Contains(c.Hooks, h) }

func (c simConfig) String() string {
	w := []string{"strategy=" + strings.ToLower(string(c.Strategy))}
	if len(c.Weights) > 0 {
		w = append(w, "weights="+joinInts(c.Weights))
	}
	if c.Iterations > 0 {
		w = append(w, fmt.Sprintf("iterations=%d", c.Iterations))
	}
	if c.PromotionStep > 0 {
		w = append(w, fmt.Sprintf("promotion-step=%d", c.PromotionStep))
	}
	w = append(w, "interval="+c.Interval.String(), "deadline="+c.Deadline.String(), fmt.Sprintf("threshold=%d", c.Threshold))
	if len(c.Hooks) > 0 {
		hooks := make([]string, len(c.Hooks))
		for i, h := range c.Hooks {
			hooks[i] = string(h)
		}
		w = append(w, "hooks="+strings.Join(hooks, ","))
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{c.Mirror, "mirror"}, {c.SkipAnalysis, "skip-analysis"}, {c.Comparative, "comparative"}} {
		if f.on {
			w = append(w, f.name)
		}
	}
	return strings.Join(append(w, "owner="+c.Owner, fmt.Sprintf("replicas=%d", c.Replicas)), " ")
}

func joinInts(v []int32) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(int(n))
	}
	return strings.Join(s, ",")
}

// parseConfig reads what simConfig.String writes.
func parseConfig(s string) (simConfig, error) {
	c := simConfig{Owner: "annotations", Replicas: 3, Threshold: 1, Interval: 10 * time.Second, Deadline: time.Minute}
	for _, word := range strings.Fields(s) {
		k, v, _ := strings.Cut(word, "=")
		if err := c.set(k, v); err != nil {
			return c, fmt.Errorf("config %q: %w", word, err)
		}
	}
	return c, nil
}

func (c *simConfig) set(k, v string) error {
	if p := c.intField(k); p != nil {
		n, err := strconv.Atoi(v)
		*p = int32(n)
		return err
	}
	if p := c.flagField(k); p != nil {
		*p = true
		return nil
	}
	var err error
	switch k {
	case "strategy":
		c.Strategy, err = parseStrategy(v)
	case "weights":
		for _, p := range strings.Split(v, ",") {
			n, e := strconv.Atoi(p)
			c.Weights, err = append(c.Weights, int32(n)), errors.Join(err, e)
		}
	case "interval":
		c.Interval, err = time.ParseDuration(v)
	case "deadline":
		c.Deadline, err = time.ParseDuration(v)
	case "hooks":
		for _, h := range strings.Split(v, ",") {
			c.Hooks = append(c.Hooks, v1alpha1.HookType(h))
		}
	case "owner":
		c.Owner = v
	default:
		return fmt.Errorf("unknown key %q", k)
	}
	return err
}

func (c *simConfig) intField(k string) *int32 {
	switch k {
	case "iterations":
		return &c.Iterations
	case "promotion-step":
		return &c.PromotionStep
	case "threshold":
		return &c.Threshold
	case "replicas":
		return &c.Replicas
	}
	return nil
}

func (c *simConfig) flagField(k string) *bool {
	switch k {
	case "mirror":
		return &c.Mirror
	case "skip-analysis":
		return &c.SkipAnalysis
	case "comparative":
		return &c.Comparative
	}
	return nil
}

func parseStrategy(v string) (v1alpha1.Strategy, error) {
	for _, s := range []v1alpha1.Strategy{v1alpha1.StrategyCanary, v1alpha1.StrategyBlueGreen, v1alpha1.StrategyABTesting} {
		if strings.ToLower(string(s)) == v {
			return s, nil
		}
	}
	return "", fmt.Errorf("unknown strategy %q", v)
}
