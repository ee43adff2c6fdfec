package rollout

import (
	"encoding/json"
	"fmt"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/serin-dev/serin/admission"
	"github.com/serin-dev/serin/api/v1alpha1"
)

// The objects of the simulated cluster and the controllers that move
// them: the user's Deployment behind the hold webhook, the Deployment
// controller's ReplicaSets, the canary copy and the data plane.

const simName, simNamespace = "podinfo", "test"

// simRS is a ReplicaSet of the user's Deployment: pods of one template.
type simRS struct {
	hash            string
	replicas, ready int32
}

// simCopy is the canary copy and what its pods run: ready pods keep
// serving their revision until pods of a new one are ready (a rolling
// update), so readyRev may lag the copy's revision.
type simCopy struct {
	obj      *appsv1.Deployment
	readyAt  int // tick at which pods of the current spec are ready
	readyRev string
	readyN   int32
}

func newDeployment(cfg simConfig) *appsv1.Deployment {
	ann := map[string]string{v1alpha1.AnnotationCanary: "enabled"}
	if cfg.Owner == "opted-in" {
		ann[v1alpha1.AnnotationOptedInBy] = simName
	}
	labels := map[string]string{"app": simName}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: simName, Namespace: simNamespace, Annotations: ann, Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(cfg.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/podinfo:v1"}}},
			},
		},
	}
}

// --- writes to the user's Deployment, through the hold webhook ---

// userWrite changes the Deployment as a user would and sends it through
// admission.
func (w *simWorld) userWrite(change func(d *appsv1.Deployment)) {
	d := w.deploy.DeepCopy()
	change(d)
	w.admit(d)
}

// mergePatch applies one of the engine's merge patches (actions.go)
// through admission.
func (w *simWorld) mergePatch(patch map[string]any) {
	orig, err := json.Marshal(w.deploy)
	must(err)
	p, err := json.Marshal(patch)
	must(err)
	out, err := jsonpatch.MergePatch(orig, p)
	must(err)
	var d appsv1.Deployment
	must(json.Unmarshal(out, &d))
	w.admit(&d)
}

// admit runs the hold webhook on an update of the Deployment (it is only
// called for managed Deployments, as its matchConditions say), applies
// its JSON patch as the API server does, and stores the result.
func (w *simWorld) admit(d *appsv1.Deployment) {
	old := w.deploy
	if v1alpha1.Managed(d.Annotations) {
		if ops := admission.Hold(old, d); len(ops) > 0 {
			raw, err := json.Marshal(d)
			must(err)
			pb, err := json.Marshal(ops)
			must(err)
			p, err := jsonpatch.DecodePatch(pb)
			must(err)
			raw, err = p.Apply(raw)
			must(err)
			d = &appsv1.Deployment{}
			must(json.Unmarshal(raw, d))
		}
	}
	if !equality.Semantic.DeepEqual(old.Spec, d.Spec) {
		d.Generation = old.Generation + 1
	}
	w.deploy = d
	w.curHash = v1alpha1.TemplateHash(&d.Spec.Template)
	w.names[w.curHash] = strings.TrimPrefix(d.Spec.Template.Spec.Containers[0].Image, "ghcr.io/podinfo:")
	w.deployChanged()
}

func (w *simWorld) deployChanged() {
	w.deployVersion++
	w.dirty = true
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// --- the Deployment controller ---

// deploymentTick is one sync of the Deployment controller: pods created
// a tick ago are ready; an unpaused Deployment rolls one pod at a time
// to its template (surge 1, none unavailable); a paused one only scales.
func (w *simWorld) deploymentTick() {
	d := w.deploy
	want := *d.Spec.Replicas
	for _, r := range w.rs {
		r.ready = r.replicas
	}
	if d.Spec.Paused {
		w.scalePaused(want)
	} else {
		w.rollTo(want)
	}
	st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation}
	for _, r := range w.rs {
		st.Replicas += r.replicas
		st.ReadyReplicas += r.ready
		if r.hash == w.curHash {
			st.UpdatedReplicas = r.replicas
		}
	}
	st.AvailableReplicas = st.ReadyReplicas
	if !sameCounts(st, d.Status) {
		d.Status = st
		w.deployChanged()
	}
}

// sameCounts compares the parts of a Deployment status the simulation
// sets.
func sameCounts(a, b appsv1.DeploymentStatus) bool {
	return a.ObservedGeneration == b.ObservedGeneration && a.Replicas == b.Replicas && a.UpdatedReplicas == b.UpdatedReplicas &&
		a.ReadyReplicas == b.ReadyReplicas && a.AvailableReplicas == b.AvailableReplicas
}

func (w *simWorld) replicaSet(hash string) *simRS {
	for _, r := range w.rs {
		if r.hash == hash {
			return r
		}
	}
	r := &simRS{hash: hash}
	w.rs = append(w.rs, r)
	return r
}

func (w *simWorld) rollTo(want int32) {
	cur := w.replicaSet(w.curHash)
	switch {
	case cur.replicas < want:
		cur.replicas++
	case cur.replicas > want:
		cur.replicas, cur.ready = want, min(cur.ready, want)
	}
	left := max(0, want-cur.ready)
	for _, r := range w.rs {
		if r != cur {
			r.replicas = min(r.replicas, left)
			r.ready = min(r.ready, r.replicas)
			left -= r.replicas
		}
	}
}

// scalePaused adds or removes pods on the ReplicaSet of the current
// template if it has pods, else on the largest one.
func (w *simWorld) scalePaused(want int32) {
	var total int32
	var big *simRS
	for _, r := range w.rs {
		total += r.replicas
		if big == nil || r.replicas > big.replicas {
			big = r
		}
	}
	if cur := w.replicaSet(w.curHash); cur.replicas > 0 {
		big = cur
	}
	if total == want {
		return
	}
	big.replicas = max(0, big.replicas+want-total)
	big.ready = min(big.ready, big.replicas)
}

// podsOnly reports whether every pod of the Deployment runs hash.
func (w *simWorld) podsOnly(hash string) bool {
	for _, r := range w.rs {
		if r.hash != hash && r.replicas > 0 || r.hash == hash && r.replicas == 0 {
			return false
		}
	}
	return true
}

// --- the canary copy ---

// ensureCopy is the reconciler's ensureCopy without an HPA.
func (w *simWorld) ensureCopy(a EnsureCopy) {
	if w.curHash != a.Revision {
		return // the Deployment moved on
	}
	c := w.copy
	if c != nil && c.obj.Annotations[v1alpha1.AnnotationRevision] == a.Revision && *c.obj.Spec.Replicas == a.Replicas {
		return // nothing to update
	}
	owner := metav1.OwnerReference{APIVersion: "serin.dev/v1alpha1", Kind: "Canary", Name: simName, UID: "c1", Controller: ptr.To(true)}
	want := BuildCopy(w.deploy, owner, a.Revision, a.Replicas)
	if c == nil {
		want.Generation = 1
		w.copy = &simCopy{obj: want, readyAt: w.tick + w.delay("copy", 1, 3)}
		w.copyChanged()
		return
	}
	old := c.obj
	if old.Annotations[v1alpha1.AnnotationRevision] != a.Revision {
		w.copyReplaced(a.Revision)
	}
	obj := old.DeepCopy()
	obj.Annotations, obj.Labels, obj.Spec.Template, obj.Spec.Replicas = want.Annotations, want.Labels, want.Spec.Template, want.Spec.Replicas
	obj.Generation++
	c.obj = obj
	c.readyAt = w.tick + w.delay("copy", 1, 3)
	c.readyN = min(c.readyN, a.Replicas)
	w.copyChanged()
}

func (w *simWorld) deleteCopy() {
	if w.copy != nil {
		w.copyReplaced("")
	}
	w.copy = nil
	w.copyChanged()
}

// copyChanged is a watch event of the copy.
func (w *simWorld) copyChanged() { w.dirty = true }

// copyTick updates the copy's pods and status.
func (w *simWorld) copyTick() {
	c := w.copy
	if c == nil {
		return
	}
	want := *c.obj.Spec.Replicas
	rev := c.obj.Annotations[v1alpha1.AnnotationRevision]
	if w.tick >= c.readyAt {
		c.readyRev, c.readyN = rev, want
	}
	st := appsv1.DeploymentStatus{ObservedGeneration: c.obj.Generation, Replicas: want, ReadyReplicas: c.readyN, AvailableReplicas: c.readyN}
	if c.readyRev == rev {
		st.UpdatedReplicas = want
	}
	if !sameCounts(st, c.obj.Status) {
		c.obj.Status = st
		w.copyChanged()
	}
}

func (w *simWorld) observeCopy() Copy {
	if w.copy == nil {
		return ObserveCopy(nil)
	}
	return ObserveCopy(w.copy.obj)
}

// --- the data plane ---

// simTraffic is the traffic a status asks for, and the revision the
// status releases with it.
type simTraffic struct {
	weight        int32
	mirror, match bool
	rev           string
}

func (t simTraffic) toCopy() bool { return t.weight > 0 || t.mirror || t.match }

func (t simTraffic) same(o simTraffic) bool {
	return t.weight == o.weight && t.mirror == o.mirror && t.match == o.match
}

func (t simTraffic) String() string {
	s := fmt.Sprintf("weight %d", t.weight)
	if t.mirror {
		s += " mirrored"
	}
	if t.match {
		s += " matched"
	}
	return s
}

func trafficOfStatus(st *v1alpha1.CanaryStatus) simTraffic {
	return simTraffic{weight: st.CanaryWeight, mirror: st.Mirroring, match: st.Matching, rev: st.CanaryRevision}
}

// simDataPlane is the proxies and serin's xDS side: the traffic in the
// Canary's status is served, each change as a new version; proxies ACK a
// version after 0-2 ticks, or reject it (a NACK sticks to that version:
// serin does not resend it), or stall.
type simDataPlane struct {
	acked   simTraffic // what the proxies route by
	served  simTraffic
	version int // of the served traffic
	ackAt   int // tick at which the proxies ACK version
	nacked  int // the version the proxies rejected (0: none)
	stalled bool
	// published is false after a restart until serin serves the status
	// again, at tick publishAt.
	published bool
	publishAt int
}

func (w *simWorld) dataPlaneTick() {
	dp := &w.dp
	if !dp.published && w.tick >= dp.publishAt {
		dp.published = true
		w.dirty = true
	}
	if srv := trafficOfStatus(&w.status); !srv.same(dp.served) || srv.rev != dp.served.rev {
		dp.served, dp.version, dp.ackAt = srv, dp.version+1, w.tick+w.delay("ack", 0, 2)
	}
	if dp.stalled || dp.served.same(dp.acked) && dp.served.rev == dp.acked.rev || dp.nacked == dp.version {
		return
	}
	if w.tick >= dp.ackAt {
		dp.acked = dp.served
		w.dirty = true // the data plane's wakeup
	}
}

// nack makes the proxies reject the version served now.
func (w *simWorld) nack() {
	w.dp.nacked, w.dirty = w.dp.version, true
}

// traffic is what the reconciler's TrafficStatus answers for the status.
func (w *simWorld) traffic() Traffic {
	dp := &w.dp
	srv := trafficOfStatus(&w.status)
	if !dp.published || !srv.same(dp.served) {
		return Traffic{}
	}
	if dp.nacked == dp.version {
		return Traffic{Proxies: 2, Rejected: "EDS: proxy rejected " + srv.String()}
	}
	return Traffic{Applied: srv.same(dp.acked), Proxies: 2}
}

// copyReplaced is called when the copy's pods are about to run rev (""
// when deleted): the proxies must not be routing canary traffic to it.
func (w *simWorld) copyReplaced(rev string) {
	if rev == "" && w.forcedDelete {
		w.forcedDelete = false
		return
	}
	if a := w.dp.acked; a.toCopy() {
		what := "deleted"
		if rev != "" {
			what = "switched to " + w.name(rev)
		}
		w.fail("copy-under-traffic", "the canary copy was %s while the proxies still routed %s to it", what, a)
	}
}

// name is the readable name (v1, v2…) of a template hash.
func (w *simWorld) name(hash string) string {
	if n, ok := w.names[hash]; ok {
		return n
	}
	if hash == "" {
		return `""`
	}
	return hash
}

// revNames lists the readable names of template hashes.
func (w *simWorld) revNames(hashes []string) string {
	out := make([]string, len(hashes))
	for i, h := range hashes {
		out[i] = w.name(h)
	}
	return strings.Join(out, ",")
}
