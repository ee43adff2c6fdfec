// Package rollout is serin's release engine: it takes a Deployment whose
// new pod template was held at admission through a canary release, and
// promotes it or rolls it back.
//
// It owns two things. Step, a pure function, is the release state machine:
// it takes values and returns values, with no clients, clocks or loggers.
// The Reconciler, a controller-runtime reconciler that runs on the leader
// only, is everything around it: it reads the world, calls Step, persists
// what Step decided and acts on it. Reconciles are level-triggered and all
// release state lives in Canary.status, so any reconcile, on any replica
// that becomes leader, carries on from where the last one stopped.
//
// # The step function
//
// Step(Input) Output looks at one Canary and returns its next status and
// the actions that make the world match it. It is split by stage:
//
//   - step.go: Step itself, the dispatch on the phase (Initializing,
//     Initialized, Waiting, Progressing, WaitingPromotion, Promoting,
//     Finalising, Succeeded, Failed, Terminating, Terminated, as Flagger
//     names them), and the start of a release: initialization, the idle
//     phases between releases (cleaning up, holding a revision that slipped
//     past the webhook, starting the next release), the confirm-rollout
//     gate, and the progressing phases up to the point where a check runs
//     (among them the ready thresholds: the share of the copy's pods and of
//     the stable pods that must be ready, canaryReadyThreshold and
//     primaryReadyThreshold, all by default).
//   - step_check.go: the analysis half: waiting until the data plane has
//     applied the traffic in status (trafficInForce), the first check with
//     its pre-rollout hooks, the periodic checks (verdicts, rollout and
//     rollback hooks, no data, failed checks against the threshold), the
//     comparative judge's fast checks between them, and the weight steps.
//   - step_finish.go: the end of a release: the hook gates (confirm-rollout
//     and confirm-promotion), promotion (the canary copy serves while the user's Deployment rolls
//     the proven template out), finalising (all traffic back to stable),
//     rollback, termination on deletion or opt-out, and how many pods the
//     canary copy runs.
//
// Input (types.go) holds the effective spec, the status as last written,
// the serin.dev/action and serin.dev/paused annotations of the Canary,
// whether it is being deleted and whether its Deployment is to be given
// back, the time, and Observations: what the reconciler saw of the user's
// Deployment (Target), of the canary copy (Copy) and of the data plane
// (Traffic), plus the analysis verdict and hook results when Step asked for
// them. Output holds the next status, the actions, when to look again
// (RequeueAfter) and, instead of all that, Needs.
//
// # The Needs loop
//
// Some answers cost a call: an analysis verdict (Prometheus queries, load
// reports) or the results of webhooks. Step does not get them up front.
// When it needs them it returns an Output with Needs set (Verdict, and the
// hook types it wants), and its status and actions are then not meaningful.
// The reconciler's step method asks the Analyzer for the verdict on the
// current step (an error becomes a failed check) and runs the hooks through
// the HookRunner, puts the answers in Input.Obs.Verdict and
// Input.Obs.Hooks, and calls Step again with the same Input otherwise. A
// check asks for everything it needs at once, so this usually takes one or
// two rounds; after four the reconciler keeps the status and looks again a
// second later.
//
// Whether the data plane applied the traffic in status is not a Need: the
// reconciler always asks TrafficStatus before it calls Step, and Step
// counts that answer only for the traffic the status held when the step
// began.
//
// # Actions
//
// Traffic is not an action. Step writes the weight, mirroring and matching
// into status; the xDS layer serves that status to the proxies on every
// replica, and tells the engine through the Reconciler's Wakeups channel
// when the proxies have applied (or rejected) it, so the engine need not
// wait for a poll.
//
// The reconciler writes the status first and only then carries the actions
// out, in order (actions.go), so a crash in between leaves a status from
// which the next reconcile decides again:
//
//   - EnsureCopy creates or updates the canary copy, <name>-canary (built by
//     BuildCopy in copy.go, owned by the Canary), and a copy of the HPA or
//     KEDA ScaledObject named in autoscalerRef (scaledobject.go: unstructured,
//     read from the API server, so no informer waits on an absent CRD);
//     DeleteCopy deletes both.
//   - EnsureServices creates or updates the Services serin owns beside the
//     user's Service <svc>, which it never touches (built by BuildServices
//     in services.go, owned by the Canary): <svc>-canary selects the canary
//     pods only, <svc>-primary the stable pods only, so hooks reach each
//     track by name; when there is no Service <svc> at all, serin makes
//     that one too, as Flagger does. Others' labels and annotations listed
//     in service.unmanagedMetadata stay. Step asks for it on every step while the Deployment
//     exists, from the first one on; DeleteServices, on termination, comes
//     before the finalizer goes.
//   - PromoteTarget records the revision as stable and unpauses the user's
//     Deployment; UnpauseTarget only unpauses it; HoldTarget pauses it and
//     records the candidate and stable revisions, as the admission webhook
//     would have; ReleaseTarget gives it back on deletion or opt-out,
//     unpaused and without the annotations serin added. All are merge
//     patches.
//   - RunHooks runs hooks without waiting on them (post-rollout).
//   - Event records a Kubernetes event on the Canary, logs it, and hands it
//     to the Notifier (alerts and event hooks) without waiting.
//   - Finished records a finished release in the metrics (metrics.go);
//     Finalized removes the finalizer once the Deployment is given back.
//
// Metrics (metrics.go) follow the reconciler: every Canary it reads, its
// status once written, the time a step spent on analysis, and deletion;
// with EnableFlagger the same also go out under Flagger's names and labels
// (flagger_metrics.go).
//
// # Around the step: adoption and ownership
//
// adopt.go decides, before any step, who owns a Canary and its Deployment.
// A Deployment opted in by the serin.dev/canary annotation alone gets a
// Canary made from its annotations, after a short grace period in case a
// Canary was applied with it. The spec of such a Canary follows the
// annotations until someone applies their own spec over it (told apart by
// the Canary's managed fields); then it is theirs. When the annotation is
// removed the Canary is deleted, and its finalizer gives the Deployment
// back. A Canary applied by hand opts its Deployment in by annotating it.
// The Deployment's annotations are parsed once per reconcile, there, and
// the effective spec is resolved from them and the Canary's own spec;
// fields set both ways are reported in the SpecConflict condition and an
// event.
//
// # Config releases
//
// The ConfigMaps and Secrets a template references are part of its
// revision. step_config.go writes the content revisions the objects hold
// (Observations.Config, read by config.go) into the template's
// serin.dev/config annotation with SetConfig, which also holds the new
// revision in the same write: from there a config change is a template
// change, and everything above carries it. Each content revision has an
// immutable snapshot beside its object, owned by the Canary; admission's
// pod webhook points a new pod at the snapshots its own annotation names,
// so stable pods keep their content whatever the objects hold. A template
// that never had the annotation is adopted (SetConfig with Adopt: written
// as the stable revision, so its pods restart onto snapshots of the same
// content without a release). Between releases config.go lets go of
// snapshots no revision needs, and deletes, one at a time, pods created
// while the pod webhook was down.
//
// # What the engine consumes
//
// The engine talks to the rest of serin through small interfaces
// (interfaces.go), each with ctx first; cmd/serin/app wires them up:
//
//   - TrafficStatus: has every subscribed proxy, on every replica, applied
//     the traffic in a Canary's status? Implemented by xds/traffic's
//     Controller; the routers that follow (Gateway API, SMI) implement it
//     too.
//   - Analyzer: the verdict on the current step, from package analysis
//     (providers and judges).
//   - HookRunner: runs the webhooks of one type and combines their results,
//     from package analysis/hooks.
//   - Notifier: sends a release event to alerts (analysis/alerts) and event
//     hooks.
//   - UninstallSignal: whether serin is being uninstalled (its webhook
//     configuration is gone or going), so a deleted Canary gives its Deployment back
//     and no Canary is made from annotations.
//
// AnalyzerFunc, HookRunnerFunc and NotifierFunc adapt plain functions to
// these interfaces, which keeps the adapters and the tests' fakes small.
//
// rbac.go carries the controller's RBAC markers for controller-gen.
package rollout
