package analysis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/analysis/prom"
	"github.com/serin-dev/serin/analysis/providers"
	"github.com/serin-dev/serin/api/querytemplate"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// TemplateGetter reads MetricTemplates.
type TemplateGetter interface {
	MetricTemplate(ctx context.Context, namespace, name string) (*v1alpha1.MetricTemplate, error)
}

// MetricProviders answer the query of a MetricTemplate, or an inline
// query, with one number: a nil provider is serin's default Prometheus,
// and an error wrapping providers.ErrNoData means the backend had no
// value (the judges wait).
type MetricProviders interface {
	Query(ctx context.Context, namespace string, p *v1alpha1.MetricProvider, req providers.Request) (float64, error)
}

// DefaultQueryTimeout bounds one Check when the context has no earlier
// deadline.
const DefaultQueryTimeout = 30 * time.Second

// Analyzer reads the metrics of a release step and judges them. The zero
// value has no providers: every built-in metric is then a failed query.
type Analyzer struct {
	// Prometheus builds Prometheus clients (default address, templates'
	// providers and their Secrets).
	Prometheus *prom.Factory
	// Providers runs MetricTemplate and inline queries; nil means
	// Prometheus only, through the Prometheus factory.
	Providers MetricProviders
	// Templates reads MetricTemplates.
	Templates TemplateGetter
	// LoadReports reads the data plane's load reports (serin's LRS).
	LoadReports LoadReporter
	// Log is used when the context carries no logger.
	Log logr.Logger
	// QueryTimeout bounds one Check (default DefaultQueryTimeout).
	QueryTimeout time.Duration
	// Metrics, when set, count the verdicts.
	Metrics *Metrics
}

// Input is one check of one release step.
type Input struct {
	// Canary names the release (name, namespace).
	Canary *v1alpha1.Canary
	// Spec is the effective spec (annotations and defaults applied); nil
	// means Canary.Spec.
	Spec *v1alpha1.CanarySpec
	// StableWorkload and CanaryWorkload are the Deployments of the two
	// tracks; they default to targetRef.name and its v1alpha1.CopyName.
	StableWorkload, CanaryWorkload string
	// Clusters are the xDS clusters whose load reports count.
	Clusters []string
	// WindowStart is when the data plane ACKed the current weight: the
	// step window never reaches before it.
	WindowStart time.Time
	// ReleaseStart is when the release began scoring traffic (the first
	// ACKed canary weight); the comparative judge's counts run from here.
	// Zero means WindowStart.
	ReleaseStart time.Time
	// Now ends both windows.
	Now time.Time
	// Checkpoint is the release's load-report counts kept in status by
	// the previous check, if any (see Result.Checkpoint).
	Checkpoint *v1alpha1.LoadCheckpoint
}

// Check queries the configured providers for the current step and judges
// the values. It returns an error only when the spec cannot be analysed
// (bad input, intervals or judge settings, an unknown built-in metric);
// a failed query is a failed check inside the Result, and no traffic is
// NoData.
func (a *Analyzer) Check(ctx context.Context, in Input) (Result, error) {
	log := a.Log
	if l, err := logr.FromContext(ctx); err == nil {
		log = l
	}
	if in.Canary == nil {
		return Result{}, errors.New("analysis input has no Canary")
	}
	if in.WindowStart.IsZero() {
		return Result{}, errors.New("analysis input has no window start (when the current weight was applied)")
	}
	if in.Now.Before(in.WindowStart) {
		return Result{}, fmt.Errorf("analysis window starts at %s, after now %s", in.WindowStart, in.Now)
	}
	if in.Spec == nil {
		in.Spec = &in.Canary.Spec
	}
	c, spec := in.Canary, in.Spec
	judge, err := ParseJudge(spec.Judge)
	if err != nil {
		return Result{}, err
	}
	interval, err := Interval(spec.Analysis)
	if err != nil {
		return Result{}, err
	}
	timeout := a.QueryTimeout
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	r := &run{a: a, in: in, ctx: ctx}
	r.workloads = prom.Workloads{Namespace: c.Namespace, Stable: in.StableWorkload, Canary: in.CanaryWorkload,
		Series: prom.SeriesFor(spec.Provider)}
	if r.workloads.Stable == "" {
		r.workloads.Stable = spec.TargetRef.Name
	}
	if r.workloads.Canary == "" {
		r.workloads.Canary = v1alpha1.CopyName(r.workloads.Stable)
	}
	target := c.Name + "." + c.Namespace
	stepSpan := in.Now.Sub(in.WindowStart)
	if stepSpan < time.Second {
		res := Result{Verdict: NoData, Message: fmt.Sprintf("Halt %s advancement no data yet: the current weight was applied %v ago", target, stepSpan.Round(time.Millisecond))}
		log.Info("analysis verdict", append([]any{"canary", target}, res.KeysAndValues()...)...)
		a.Metrics.observe(c.Namespace, c.Name, res)
		return res, nil
	}

	ev := Evidence{Target: target}
	var metrics []v1alpha1.CanaryMetric
	if spec.Analysis != nil {
		metrics = spec.Analysis.Metrics
	}
	for _, m := range metrics {
		win, err := MetricInterval(spec.Analysis, m)
		if err != nil {
			return Result{}, err
		}
		win = min(win, stepSpan)
		mv, err := r.metric(m, win)
		if err != nil {
			return Result{}, err
		}
		ev.Metrics = append(ev.Metrics, mv)
	}
	if judge.Kind == v1alpha1.JudgeComparative {
		ev.Comparison = r.comparison(judge, min(interval, stepSpan))
	}
	res := Judge(ev)
	res.Checkpoint = r.checkpoint
	a.Metrics.observeValues(c.Namespace, r.workloads.Stable, ev)
	log.Info("analysis verdict", append([]any{"canary", target, "judge", string(judge.Kind)}, res.KeysAndValues()...)...)
	a.Metrics.observe(c.Namespace, c.Name, res)
	return res, nil
}

// run holds one Check's inputs and what it already fetched.
type run struct {
	a         *Analyzer
	in        Input
	ctx       context.Context
	workloads prom.Workloads
	counts    map[[2]int64]countsResult
	latency   map[time.Duration]latencyResult
	// checkpoint is the release's load-report counts to keep in status.
	checkpoint *v1alpha1.LoadCheckpoint
}

type countsResult struct {
	counts ErrorCounts
	source string
	err    error
}

type latencyResult struct {
	canary, stable Value
	err            error
}

func (r *run) metric(m v1alpha1.CanaryMetric, win time.Duration) (MetricValue, error) {
	mv := MetricValue{Name: m.Name, Range: m.ThresholdRange, Window: win}
	switch {
	case m.TemplateRef != nil:
		mv.Kind, mv.Source = KindCustom, SourcePrometheus
		mv.Canary, mv.Source, mv.Err = r.custom(m, win)
	case m.Name == v1alpha1.MetricRequestSuccessRate:
		mv.Kind = KindSuccessRate
		cr := r.stepCounts(win)
		mv.Source, mv.Err = cr.source, cr.err
		mv.CanaryRequests, mv.StableRequests = cr.counts.CanaryRequests, cr.counts.StableRequests
		mv.Canary = SuccessRate(cr.counts.CanaryRequests, cr.counts.CanaryErrors)
		st := SuccessRate(cr.counts.StableRequests, cr.counts.StableErrors)
		mv.Stable = &st
	case m.Name == v1alpha1.MetricRequestDuration:
		mv.Kind, mv.Source = KindDuration, SourcePrometheus
		lr := r.durations(win)
		mv.Canary, mv.Err = lr.canary, lr.err
		st := lr.stable
		mv.Stable = &st
	case m.Query != "":
		mv.Kind, mv.Source = KindCustom, SourcePrometheus
		mv.Canary, mv.Err = r.inline(m, win)
	default:
		return mv, fmt.Errorf("metric %q is neither a built-in (%s, %s) nor has a templateRef or a query",
			m.Name, v1alpha1.MetricRequestSuccessRate, v1alpha1.MetricRequestDuration)
	}
	return mv, nil
}

// useLoadReports says whether load reports are the primary source of
// request counts.
func (r *run) useLoadReports() bool {
	lr := r.in.Spec.LoadReports
	return lr != nil && lr.Enabled && r.a.LoadReports != nil && len(r.in.Clusters) > 0
}

// countsBetween reads both tracks' counts for [since, until]: from load
// reports when they are enabled, otherwise from Prometheus, falling back
// to load reports when Prometheus fails and the reports have traffic.
func (r *run) countsBetween(since, until time.Time) countsResult {
	if r.useLoadReports() {
		return countsResult{counts: CountsFromLoadReports(r.a.LoadReports, r.in.Clusters, since, until), source: SourceLoadReports}
	}
	counts, err := r.promCounts(until.Sub(since), until)
	if err == nil {
		return countsResult{counts: counts, source: SourcePrometheus}
	}
	if r.a.LoadReports != nil && len(r.in.Clusters) > 0 {
		lc := CountsFromLoadReports(r.a.LoadReports, r.in.Clusters, since, until)
		if lc.CanaryRequests+lc.StableRequests > 0 {
			return countsResult{counts: lc, source: SourceLoadReports}
		}
	}
	return countsResult{source: SourcePrometheus, err: err}
}

func (r *run) promCounts(win time.Duration, at time.Time) (ErrorCounts, error) {
	client, err := r.a.promClient(r.ctx, r.in.Canary.Namespace, r.metricsServer())
	if err != nil {
		return ErrorCounts{}, err
	}
	tc, err := client.RequestCounts(r.ctx, r.workloads, win, at)
	if err != nil {
		return ErrorCounts{}, err
	}
	return ErrorCounts{CanaryRequests: tc.Canary.Requests, CanaryErrors: tc.Canary.Errors,
		StableRequests: tc.Stable.Requests, StableErrors: tc.Stable.Errors}, nil
}

func (r *run) stepCounts(win time.Duration) countsResult {
	return r.cachedCounts(r.in.Now.Add(-win), r.in.Now)
}

// cachedCounts reads each window once per Check.
func (r *run) cachedCounts(since, until time.Time) countsResult {
	key := [2]int64{since.UnixNano(), until.UnixNano()}
	if cr, ok := r.counts[key]; ok {
		return cr
	}
	cr := r.countsBetween(since, until)
	if r.counts == nil {
		r.counts = map[[2]int64]countsResult{}
	}
	r.counts[key] = cr
	return cr
}

func (r *run) durations(win time.Duration) latencyResult {
	if lr, ok := r.latency[win]; ok {
		return lr
	}
	var lr latencyResult
	client, err := r.a.promClient(r.ctx, r.in.Canary.Namespace, r.metricsServer())
	if err == nil {
		var tv prom.TrackValues
		tv, err = client.RequestDuration(r.ctx, r.workloads, win, r.in.Now)
		lr.canary, lr.stable = Value(tv.Canary), Value(tv.Stable)
	}
	if err != nil {
		lr.err = fmt.Errorf("request duration needs Prometheus: %w", err)
	}
	if r.latency == nil {
		r.latency = map[time.Duration]latencyResult{}
	}
	r.latency[win] = lr
	return lr
}

func (r *run) custom(m v1alpha1.CanaryMetric, win time.Duration) (Value, string, error) {
	source := SourcePrometheus
	if r.a.Templates == nil {
		return Value{}, source, errors.New("no MetricTemplate reader configured")
	}
	ns := m.TemplateRef.Namespace
	if ns == "" {
		ns = r.in.Canary.Namespace
	}
	tpl, err := r.a.Templates.MetricTemplate(r.ctx, ns, m.TemplateRef.Name)
	if err != nil {
		return Value{}, source, fmt.Errorf("metric template %s/%s: %w", ns, m.TemplateRef.Name, err)
	}
	if t := tpl.Spec.Provider.Type; t != "" {
		source = string(t)
	}
	vals := r.queryValues(m, win)
	vals.FormatInterval = providers.IntervalFormat(tpl.Spec.Provider.Type)
	query, err := querytemplate.RenderDialect(tpl.Spec.Query, vals, v1alpha1.QueryDialect(tpl.Spec.Provider.Type))
	if err != nil {
		return Value{}, source, fmt.Errorf("metric template %s/%s: %w", ns, m.TemplateRef.Name, err)
	}
	v, err := r.a.query(r.ctx, tpl.Namespace, &tpl.Spec.Provider, providers.Request{Query: query, Window: win, End: r.in.Now})
	if err != nil {
		err = fmt.Errorf("metric template %s/%s: %w", ns, m.TemplateRef.Name, err)
	}
	return v, source, err
}

// inline runs Flagger's analysis.metrics[].query: PromQL against the
// Canary's metricsServer, else serin's default Prometheus (whose
// credentials never go to a metricsServer).
func (r *run) inline(m v1alpha1.CanaryMetric, win time.Duration) (Value, error) {
	query, err := querytemplate.Render(m.Query, r.queryValues(m, win))
	if err != nil {
		return Value{}, fmt.Errorf("metric %s query: %w", m.Name, err)
	}
	v, err := r.a.query(r.ctx, r.in.Canary.Namespace, r.metricsServer(), providers.Request{Query: query, Window: win, End: r.in.Now})
	if err != nil {
		err = fmt.Errorf("metric %s query: %w", m.Name, err)
	}
	return v, err
}

// metricsServer is the Canary's own Prometheus (spec.metricsServer) as a
// provider, or nil for serin's default.
func (r *run) metricsServer() *v1alpha1.MetricProvider {
	if r.in.Spec.MetricsServer == "" {
		return nil
	}
	return &v1alpha1.MetricProvider{Type: v1alpha1.ProviderPrometheus, Address: r.in.Spec.MetricsServer}
}

func (r *run) queryValues(m v1alpha1.CanaryMetric, win time.Duration) querytemplate.Values {
	c := r.in.Canary
	service := r.in.Spec.Service.Name
	if service == "" {
		service = r.in.Spec.TargetRef.Name
	}
	v := querytemplate.Values{Name: c.Name, Namespace: c.Namespace, Target: r.workloads.Canary, Canary: r.workloads.Canary,
		Stable: r.workloads.Stable, Service: service, Interval: win, Variables: m.TemplateVariables}
	if ref := r.in.Spec.IngressRef; ref != nil {
		v.Ingress = ref.Name
	}
	return v
}

// comparison gathers the comparative judge's input: cumulative counts over
// the release, counts and p99s over the step.
func (r *run) comparison(j JudgeConfig, stepWin time.Duration) *Comparison {
	cmp := &Comparison{FalseRollbackRate: j.FalseRollbackRate, Tolerance: j.Tolerance,
		LatencyTolerance: j.LatencyTolerance, EarlyPromotion: j.EarlyPromotion}
	start := r.in.ReleaseStart
	if start.IsZero() || start.After(r.in.WindowStart) {
		start = r.in.WindowStart
	}
	cmp.Window = r.in.Now.Sub(start)
	rel := r.releaseCounts(start)
	cmp.Release, cmp.Source, cmp.Err = rel.counts, rel.source, rel.err
	step := r.stepCounts(stepWin)
	cmp.Step = step.counts
	if cmp.Err == nil && step.err != nil {
		cmp.Err = step.err
	}
	// Latency needs Prometheus; without one (load reports only) the
	// comparison is on error rates alone.
	if r.a.Prometheus != nil && (r.a.Prometheus.Default.Address != "" || r.in.Spec.MetricsServer != "") {
		lr := r.durations(stepWin)
		cmp.LatencyCanary, cmp.LatencyStable, cmp.LatencyErr = lr.canary, lr.stable, lr.err
	}
	return cmp
}

// query asks the providers, and reads their "no data" as a Value
// without data.
func (a *Analyzer) query(ctx context.Context, namespace string, p *v1alpha1.MetricProvider, req providers.Request) (Value, error) {
	mp := a.Providers
	if mp == nil {
		mp = &providers.Factory{Prometheus: a.Prometheus}
	}
	v, err := mp.Query(ctx, namespace, p, req)
	switch {
	case errors.Is(err, providers.ErrNoData):
		return Value{}, nil
	case err != nil:
		return Value{}, err
	}
	return Value{V: v, OK: true}, nil
}

func (a *Analyzer) promClient(ctx context.Context, namespace string, p *v1alpha1.MetricProvider) (*prom.Client, error) {
	if a.Prometheus == nil {
		return nil, prom.ErrNoAddress
	}
	return a.Prometheus.Client(ctx, namespace, p)
}

// Load reports are kept for fifteen minutes, and the comparative judge
// counts the whole release: a release's counts from load reports are
// kept in status up to a checkpoint, on a ten-second boundary at least
// checkpointLag old (so every replica's reports for it are in), and the
// reports since the checkpoint are added to it. Load-report buckets never
// straddle a ten-second boundary, so the two parts never overlap.
const (
	checkpointLag   = 30 * time.Second
	checkpointAlign = 10
)

// releaseCounts are the counts from start to now. From load reports, they
// are the checkpoint of the previous check plus what came since, and the
// check leaves a new checkpoint.
func (r *run) releaseCounts(start time.Time) countsResult {
	now := r.in.Now
	var whole countsResult
	var base ErrorCounts
	from := start
	if cp := r.in.Checkpoint; cp != nil && cp.Since.Time.Equal(start) && !cp.Through.Time.Before(start) && !cp.Through.Time.After(now) {
		rest := r.cachedCounts(cp.Through.Time, now)
		if rest.err == nil && rest.source == SourceLoadReports {
			base, from = countsOf(cp), cp.Through.Time
			whole = countsResult{counts: base.Add(rest.counts), source: SourceLoadReports}
		}
	}
	if from.Equal(start) {
		whole = r.cachedCounts(start, now)
		if whole.err != nil || whole.source != SourceLoadReports {
			return whole
		}
	}
	sec := now.Add(-checkpointLag).Unix()
	through := time.Unix(sec-sec%checkpointAlign, 0)
	if !through.After(from) {
		r.checkpoint = r.in.Checkpoint
		if from.Equal(start) {
			r.checkpoint = nil
		}
		return whole
	}
	mid := r.cachedCounts(from, through)
	if mid.err != nil || mid.source != SourceLoadReports {
		return whole
	}
	r.checkpoint = checkpointOf(start, through, base.Add(mid.counts))
	return whole
}

func countsOf(cp *v1alpha1.LoadCheckpoint) ErrorCounts {
	return ErrorCounts{
		CanaryRequests: float64(cp.Canary.Requests), CanaryErrors: float64(cp.Canary.Errors),
		StableRequests: float64(cp.Stable.Requests), StableErrors: float64(cp.Stable.Errors),
	}
}

func checkpointOf(since, through time.Time, c ErrorCounts) *v1alpha1.LoadCheckpoint {
	return &v1alpha1.LoadCheckpoint{
		Since: metav1.NewTime(since), Through: metav1.NewTime(through),
		Canary: v1alpha1.LoadTrackCounts{Requests: int64(c.CanaryRequests), Errors: int64(c.CanaryErrors)},
		Stable: v1alpha1.LoadTrackCounts{Requests: int64(c.StableRequests), Errors: int64(c.StableErrors)},
	}
}
