// Package analysis owns the verdict on a release step: it reads metric
// values from the providers (Prometheus built-ins and MetricTemplates in
// analysis/prom, the data plane's load reports) and turns them into a
// Result with a judge.
//
// Two judges, both pure functions of the values they are given:
//
//   - Threshold (Flagger's): every metric must stay inside its
//     thresholdRange; a value outside is a failed check, and the engine
//     rolls back after `threshold` failed checks.
//   - Comparative: the threshold checks, plus canary against stable over
//     the same window. Error rates go through an anytime-valid sequential
//     test built from cumulative counts only (see SequentialTest): it rolls
//     back as soon as the canary is shown worse than stable by more than
//     the tolerance, with the chance of rolling back a canary that is no
//     worse bounded by falseRollbackRate however often it is asked, and it
//     can promote early once the canary is shown no worse. p99 latency is
//     compared with a relative tolerance.
//
// No traffic is NoData: never a failed check and never a pass.
//
// Load reports reach whichever serin replica a proxy is connected to; the
// LoadReporter the leader is given (xds/traffic's LoadShare) sums every
// replica's, and keeps what it counted across restarts, so the
// comparative judge recomputes the same cumulative counts after a leader
// change and never starts a release's evidence again from zero.
//
// The subpackages own the edges: prom (Prometheus), querytemplate
// (MetricTemplate queries), hooks (webhooks), alerts (Slack, Teams,
// Discord, generic) and tester (the load tester and gates service).
package analysis
