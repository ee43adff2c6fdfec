package rollout

import (
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// Input is everything one step of a release looks at. It holds values
// only: the reconciler gathers them, Step decides.
type Input struct {
	// Name and Namespace of the Canary (and of the Deployment it releases).
	Name, Namespace string
	// Spec is the effective, defaulted spec.
	Spec *v1alpha1.CanarySpec
	// Status is the Canary's status as last written.
	Status v1alpha1.CanaryStatus
	// Action is the serin.dev/action annotation of the Canary ("" if none).
	Action string
	// Paused is the serin.dev/paused annotation of the Canary.
	Paused bool
	// Deleting is true when the Canary is being deleted or the workload
	// opted out; Revert says whether to give the Deployment back unpaused.
	Deleting, Revert bool
	Obs              Observations
	Now              time.Time
}

// Observations are the state of the world the reconciler saw.
type Observations struct {
	// Target is the user's Deployment.
	Target Target
	// Copy is the canary copy (Exists false when there is none).
	Copy Copy
	// Traffic is what the data plane has applied.
	Traffic Traffic
	// Verdict is the analysis verdict for the current step; nil when it was
	// not asked for.
	Verdict *Verdict
	// Hooks are the results of the hooks Step asked for, by type.
	Hooks map[v1alpha1.HookType]HookResult
	// Config is what the ConfigMaps and Secrets the template references
	// hold now.
	Config Config
}

// Config is the content of the ConfigMaps and Secrets the Deployment's
// template references, as the reconciler read it.
type Config struct {
	// Known is false when serin does not track config (turned off, or
	// the objects could not be read): Step then leaves config alone.
	Known bool
	// Tracked are the content revisions the objects hold now, sorted.
	Tracked []v1alpha1.ConfigRevision
}

// Want is the serin.dev/config annotation the template should carry.
func (c Config) Want() string { return v1alpha1.FormatConfig(c.Tracked) }

// Target is what the reconciler saw of the user's Deployment.
type Target struct {
	Found bool
	// TemplateHash is the revision of its current pod template.
	TemplateHash string
	// Config is its template's serin.dev/config annotation: the content
	// revisions its pods read.
	Config string
	// BaseHash is the revision of its template without that annotation:
	// the revision it had before serin tracked its config.
	BaseHash string
	// Candidate and Stable are its serin.dev/candidate-revision and
	// serin.dev/stable-revision annotations.
	Candidate, Stable string
	Paused            bool
	// Replicas is the desired replica count.
	Replicas int32
	// ReadyReplicas is the number of its ready pods.
	ReadyReplicas int32
	// Available is true when the stable pods are available (at least one,
	// or zero wanted).
	Available bool
	// RolledOut is true when the Deployment's rollout of its current
	// template is complete: observed, all replicas updated and available,
	// no old pods left.
	RolledOut bool
}

// Copy is what the reconciler saw of the canary copy.
type Copy struct {
	Exists   bool
	Revision string
	// Ready is true when all its desired replicas are ready.
	Ready         bool
	ReadyReplicas int32
	// Desired is its desired replica count; RolledOut is true when every
	// one of its pods runs its current template (ready or not).
	Desired   int32
	RolledOut bool
}

// Traffic is what the data plane has applied of the traffic in status.
type Traffic struct {
	// Applied is true when every subscribed proxy has ACKed the weight,
	// mirroring and routes in status (true when no proxy is subscribed).
	Applied bool
	// Proxies is the number of subscribed proxies.
	Proxies int
	// Rejected is set when a proxy NACKed serin's config for this release.
	Rejected string
}

// Decision is the analysis verdict on a step.
type Decision string

// Decisions.
const (
	// Promote: the step passed; move on.
	Promote Decision = "Promote"
	// Hold: do not move on; a failed check when FailedCheck is set.
	Hold Decision = "Hold"
	// Rollback: the canary is decisively worse; roll back now.
	Rollback Decision = "Rollback"
	// NoData: there was no traffic to judge; wait.
	NoData Decision = "NoData"
)

// Decisions are every decision Step acts on.
var Decisions = [...]Decision{Promote, Hold, Rollback, NoData}

// Verdict is analysis' answer for the current step.
type Verdict struct {
	Decision Decision
	// FailedCheck counts this check against the threshold.
	FailedCheck bool
	// Early promotes now, skipping the remaining steps.
	Early bool
	// Message is the human sentence for events, in Flagger's words.
	Message string
	// Summary lists every value next to its threshold, for status.
	Summary string
	// Checkpoint, when set, replaces status.loadCheckpoint once the check
	// is recorded.
	Checkpoint *v1alpha1.LoadCheckpoint
}

// HookResult is the combined result of the hooks of one type.
type HookResult struct {
	Passed  bool
	Message string
}

// Needs are the answers Step wants before it can decide: the reconciler
// asks analysis and runs the hooks, then calls Step again.
type Needs struct {
	Verdict bool
	Hooks   []v1alpha1.HookType
}

// Output is the decision of one step.
type Output struct {
	Status  v1alpha1.CanaryStatus
	Actions []Action
	// Needs is set when Step needs a verdict or hook results first; then
	// Status and Actions are not meaningful.
	Needs *Needs
	// RequeueAfter is when to look again (0: on the next event).
	RequeueAfter time.Duration
}

// Action is something the reconciler does after persisting the status.
type Action interface{ isAction() }

// EnsureCopy creates or updates the canary copy to run Revision (the
// Deployment's current template) with Replicas pods.
type EnsureCopy struct {
	Revision string
	Replicas int32
}

// SetConfig records Value as the template's serin.dev/config annotation,
// after making sure a snapshot of every content revision it names exists.
// A changed annotation is a changed template: the hold webhook holds it
// for a release. With Adopt, the new template is recorded as the stable
// revision in the same write, so it rolls out without a release: that
// moves pods that read the objects themselves onto snapshots of the same
// content.
type SetConfig struct {
	Value string
	Adopt bool
	// Stable is the stable revision recorded beside the held one.
	Stable string
}

// DeleteCopy deletes the canary copy and its HPA.
type DeleteCopy struct{}

// EnsureServices creates or updates the Services serin owns beside the
// user's Service, <svc>-canary (canary pods only) and <svc>-primary (stable
// pods only), and the apex <svc> when there is none of the user's, and
// deletes any others the Canary owns.
type EnsureServices struct{}

// DeleteServices deletes the Services the Canary owns.
type DeleteServices struct{}

// PromoteTarget rolls the user's Deployment out: it records Revision as
// stable and unpauses it.
type PromoteTarget struct{ Revision string }

// UnpauseTarget unpauses the Deployment without a release (a cancelled
// release, or a template reverted to stable).
type UnpauseTarget struct{}

// HoldTarget pauses a Deployment whose new revision slipped past the
// webhook and records the revisions, as the webhook would have.
type HoldTarget struct{ Candidate, Stable string }

// ReleaseTarget gives the Deployment back on opt-out or deletion: unpaused,
// serin's annotations removed.
type ReleaseTarget struct {
	// Revision is the template the Deployment runs from now on: first
	// recorded as both candidate and stable (so that the hold webhook lets
	// a still-annotated Deployment roll it out), then serin's annotations
	// are removed.
	Revision string
}

// RunHooks calls the hooks of a type without waiting on their answer
// (post-rollout).
type RunHooks struct{ Type v1alpha1.HookType }

// Event is a Kubernetes event on the Canary, also sent to alerts and event
// hooks.
type Event struct {
	Warning bool
	Reason  string
	// Action is what happened, in one word ("Advance", "Rollback"): the
	// events.k8s.io action. Events with the same reason and action on the
	// same object version are folded into one series by the recorder, so
	// the events of one step must differ in action.
	Action  string
	Message string
}

// Finished records the end of a release for metrics.
type Finished struct {
	Succeeded bool
	Duration  time.Duration
}

// Finalized says the Canary's deletion is complete: remove the finalizer.
type Finalized struct{}

func (EnsureCopy) isAction()     {}
func (DeleteCopy) isAction()     {}
func (SetConfig) isAction()      {}
func (EnsureServices) isAction() {}
func (DeleteServices) isAction() {}
func (PromoteTarget) isAction()  {}
func (UnpauseTarget) isAction()  {}
func (HoldTarget) isAction()     {}
func (ReleaseTarget) isAction()  {}
func (RunHooks) isAction()       {}
func (Event) isAction()          {}
func (Finished) isAction()       {}
func (Finalized) isAction()      {}
