package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// testHold follows one opted-in Deployment through client-side `kubectl
// apply`: v1 is admitted as written, v2 is held, re-applying v2 changes
// nothing, a server dry-run of v3 answers with the same hold a real apply
// of v3 then stores, and stores nothing itself.
func (e *env) testHold(t *testing.T) {
	t.Parallel()
	ns := e.c.Namespace(t)
	const name = "web"
	manifest := func(tag string) string {
		return deploy{ns: ns, name: name, image: tag, annotations: enabled}.yaml()
	}

	// v1: created exactly as written; the webhook was asked and declined.
	d1 := e.kubectlDeployment(t, manifest("6.0.0"), "apply", "-o", "json", "-f", "-")
	if h := holdOf(d1); h != (hold{}) {
		t.Errorf("v1 was changed by admission: %+v", h)
	}
	if got := matching(e.calls("deployments", ns, name), func(c call) bool { return c.Webhook == "hold" && c.Operation == "CREATE" }); len(got) != 1 || got[0].Result != "allowed" {
		t.Errorf("v1: hold webhook calls %+v, want one CREATE answered allowed", got)
	}
	v1Hash := v1alpha1.TemplateHash(&d1.Spec.Template)
	e.settled(t, ns, name)
	mark := len(e.calls("deployments", ns, name))

	// v2: held. The stored object keeps v2's template as applied.
	d2 := e.kubectlDeployment(t, manifest("6.0.1"), "apply", "-o", "json", "-f", "-")
	v2Hash := v1alpha1.TemplateHash(&d2.Spec.Template)
	wantV2 := hold{Paused: true, Candidate: v2Hash, HasCandidate: true, Stable: v1Hash, HasStable: true}
	if image(d2) != "ghcr.io/stefanprodan/podinfo:6.0.1" {
		t.Errorf("v2 stored with image %s", image(d2))
	}
	if h := holdOf(d2); h != wantV2 || v2Hash == v1Hash {
		t.Errorf("v2 hold = %+v, want %+v", h, wantV2)
	}
	if h := holdOf(e.get(t, ns, name)); h != wantV2 {
		t.Errorf("v2 stored hold = %+v, want %+v", h, wantV2)
	}
	// (More than one call for one request is the API server retrying a
	// patch after a conflict: admission runs on each attempt.)
	if got := callsOf(e.calls("deployments", ns, name)[mark:], "hold"); len(got) == 0 ||
		len(matching(got, func(c call) bool { return c.Result == "patched" && c.Operation == "UPDATE" && !c.DryRun })) != len(got) {
		t.Errorf("v2: hold calls %+v, want the UPDATE patched", got)
	}
	e.settled(t, ns, name)

	// Re-applying v2: kubectl finds nothing to send, the API server writes
	// nothing, and the webhook is not asked again.
	n := len(e.calls("deployments", ns, name))
	e.noWrite(t, ns, name, "re-apply v2", func() {
		out, err := e.c.Kubectl(context.Background(), manifest("6.0.1"), "apply", "-f", "-")
		if err != nil || !strings.Contains(out, "unchanged") {
			t.Fatalf("re-apply v2: %q %v", out, err)
		}
	})
	if got := e.calls("deployments", ns, name); len(got) != n {
		t.Errorf("re-apply v2 reached serin: %+v", got[n:])
	}

	// v3 with --dry-run=server: the answer is held the same way, and
	// nothing is stored.
	var d3dry *appsv1.Deployment
	e.noWrite(t, ns, name, "dry-run v3", func() {
		d3dry = e.kubectlDeployment(t, manifest("6.0.2"), "apply", "--dry-run=server", "-o", "json", "-f", "-")
	})
	v3Hash := v1alpha1.TemplateHash(&d3dry.Spec.Template)
	wantV3 := hold{Paused: true, Candidate: v3Hash, HasCandidate: true, Stable: v1Hash, HasStable: true}
	if image(d3dry) != "ghcr.io/stefanprodan/podinfo:6.0.2" || holdOf(d3dry) != wantV3 {
		t.Errorf("dry-run v3 answered image %s hold %+v, want 6.0.2 and %+v", image(d3dry), holdOf(d3dry), wantV3)
	}
	if d := e.get(t, ns, name); image(d) != "ghcr.io/stefanprodan/podinfo:6.0.1" || holdOf(d) != wantV2 {
		t.Errorf("dry-run v3 stored something: image %s hold %+v", image(d), holdOf(d))
	}
	if got := callsOf(matching(e.calls("deployments", ns, name), func(c call) bool { return c.DryRun }), "hold"); len(got) == 0 ||
		len(matching(got, func(c call) bool { return c.Result == "patched" })) != len(got) {
		t.Errorf("dry-run v3: dry-run hold calls %+v, want it patched", got)
	}

	// The real apply of v3 stores what the dry run answered (the engine
	// restarts its release on the newest revision).
	d3 := e.kubectlDeployment(t, manifest("6.0.2"), "apply", "-o", "json", "-f", "-")
	if holdOf(d3) != holdOf(d3dry) || v1alpha1.TemplateHash(&d3.Spec.Template) != v3Hash {
		t.Errorf("apply v3 stored %+v, the dry run answered %+v", holdOf(d3), holdOf(d3dry))
	}

	// `kubectl replace` of v3 (a PUT of the manifest as written, as GitOps
	// tools do with a replace or force sync) drops paused and serin's
	// annotations from the request: the hold must come back as it was.
	replaced := e.kubectlDeployment(t, manifest("6.0.2"), "replace", "-o", "json", "-f", "-")
	if h := holdOf(replaced); h != wantV3 {
		t.Errorf("replace v3 stored %+v, want %+v", h, wantV3)
	}
}

// testHoldServerSide is the same path with `kubectl apply --server-side`,
// where every apply reaches the API server and the webhook. Server-side
// apply removes fields the applier owns but no longer sends; the test logs
// who owns the hold's fields (nobody: the API server computes managed
// fields before mutating admission) and checks that re-applying v2 stores
// nothing new.
func (e *env) testHoldServerSide(t *testing.T) {
	t.Parallel()
	ns := e.c.Namespace(t)
	const name = "ssa"
	manifest := func(tag string) string {
		return deploy{ns: ns, name: name, image: tag, annotations: enabled}.yaml()
	}
	ssa := []string{"apply", "--server-side", "-o", "json", "-f", "-"}
	d1 := e.kubectlDeployment(t, manifest("6.0.0"), ssa...)
	if h := holdOf(d1); h != (hold{}) {
		t.Errorf("v1 was changed by admission: %+v", h)
	}
	e.settled(t, ns, name)
	d2 := e.kubectlDeployment(t, manifest("6.0.1"), ssa...)
	want := hold{Paused: true, Candidate: v1alpha1.TemplateHash(&d2.Spec.Template), HasCandidate: true,
		Stable: v1alpha1.TemplateHash(&d1.Spec.Template), HasStable: true}
	if h := holdOf(d2); h != want {
		t.Errorf("v2 hold = %+v, want %+v", h, want)
	}
	// Who owns the hold's fields decides what a re-apply removes.
	for _, m := range e.get(t, ns, name).ManagedFields {
		if m.FieldsV1 == nil {
			continue
		}
		f := m.FieldsV1.GetRawString()
		t.Logf("managed fields of %s (%s%s): spec.paused %v, candidate annotation %v", m.Manager, m.Operation, m.Subresource,
			strings.Contains(f, `"f:paused"`), strings.Contains(f, v1alpha1.AnnotationCandidateRevision))
	}
	n := len(callsOf(e.calls("deployments", ns, name), "hold"))
	var again *appsv1.Deployment
	e.noWrite(t, ns, name, "server-side re-apply v2", func() {
		again = e.kubectlDeployment(t, manifest("6.0.1"), ssa...)
	})
	if h := holdOf(again); h != want {
		t.Errorf("re-applied v2 answered %+v, want %+v", h, want)
	}
	if got := callsOf(e.calls("deployments", ns, name), "hold"); len(got) <= n {
		t.Errorf("server-side re-apply did not reach the webhook (%d calls)", len(got))
	}
}

// testNotHeld: replicas, labels and annotations of the Deployment object
// are not a new revision, whether the Deployment is idle or held.
func (e *env) testNotHeld(t *testing.T) {
	t.Parallel()
	ns := e.c.Namespace(t)
	const name = "knobs"
	base := deploy{ns: ns, name: name, image: "6.0.0", annotations: enabled}
	e.kubectlDeployment(t, base.yaml(), "apply", "-o", "json", "-f", "-")
	e.settled(t, ns, name)

	kubectl := func(args ...string) {
		t.Helper()
		if _, err := e.c.Kubectl(context.Background(), "", args...); err != nil {
			t.Fatal(err)
		}
	}
	// check runs a change and asserts the stored object's hold, and whether
	// the hold webhook was asked (and answered allowed).
	check := func(what string, want hold, wantCall bool, change func() *appsv1.Deployment) *appsv1.Deployment {
		t.Helper()
		n := len(callsOf(e.calls("deployments", ns, name), "hold"))
		d := change()
		if h := holdOf(d); h != want {
			t.Errorf("%s: hold %+v, want %+v", what, h, want)
		}
		got := callsOf(e.calls("deployments", ns, name), "hold")[n:]
		switch {
		case wantCall && (len(got) == 0 || len(matching(got, func(c call) bool { return c.Result == "allowed" })) != len(got)):
			t.Errorf("%s: hold webhook calls %+v, want it answered allowed", what, got)
		case !wantCall && len(got) != 0:
			t.Errorf("%s: hold webhook called %+v", what, got)
		}
		return d
	}
	none := hold{}
	// kubectl scale writes the scale subresource, which the webhook's rules
	// leave out: the API server does not call it at all.
	d := check("kubectl scale", none, false, func() *appsv1.Deployment {
		kubectl("scale", "-n", ns, "deployment/"+name, "--replicas=3")
		return e.get(t, ns, name)
	})
	if *d.Spec.Replicas != 3 {
		t.Errorf("kubectl scale: replicas %d", *d.Spec.Replicas)
	}
	scaled := base
	scaled.replicas = 2
	d = check("replicas in the manifest", none, true, func() *appsv1.Deployment {
		return e.kubectlDeployment(t, scaled.yaml(), "apply", "-o", "json", "-f", "-")
	})
	if *d.Spec.Replicas != 2 {
		t.Errorf("apply replicas 2: replicas %d", *d.Spec.Replicas)
	}
	check("kubectl label", none, true, func() *appsv1.Deployment {
		kubectl("label", "-n", ns, "deployment/"+name, "team=payments")
		return e.get(t, ns, name)
	})
	labelled := scaled
	labelled.labels = map[string]string{"tier": "frontend"}
	d = check("labels in the manifest", none, true, func() *appsv1.Deployment {
		return e.kubectlDeployment(t, labelled.yaml(), "apply", "-o", "json", "-f", "-")
	})
	if d.Labels["tier"] != "frontend" {
		t.Errorf("label not stored: %v", d.Labels)
	}
	check("kubectl annotate", none, true, func() *appsv1.Deployment {
		kubectl("annotate", "-n", ns, "deployment/"+name, "example.com/owner=payments")
		return e.get(t, ns, name)
	})

	// Held on v2, the same changes keep the hold as it is.
	v2 := labelled
	v2.image = "6.0.1"
	d2 := e.kubectlDeployment(t, v2.yaml(), "apply", "-o", "json", "-f", "-")
	e.settled(t, ns, name)
	held := holdOf(d2)
	if !held.Paused || held.Candidate != v1alpha1.TemplateHash(&d2.Spec.Template) || held.Stable != v1alpha1.TemplateHash(&d.Spec.Template) {
		t.Fatalf("v2 not held: %+v", held)
	}
	check("held: kubectl scale", held, false, func() *appsv1.Deployment {
		kubectl("scale", "-n", ns, "deployment/"+name, "--replicas=4")
		return e.get(t, ns, name)
	})
	check("held: kubectl label", held, true, func() *appsv1.Deployment {
		kubectl("label", "-n", ns, "deployment/"+name, "team=checkout", "--overwrite")
		return e.get(t, ns, name)
	})
	v2.replicas = 5
	check("held: replicas in the manifest", held, true, func() *appsv1.Deployment {
		return e.kubectlDeployment(t, v2.yaml(), "apply", "-o", "json", "-f", "-")
	})
}

// testUnmanagedNeverSent: the API server never calls the hold webhook for
// a Deployment without the opt-in annotation, whatever is done to it. It
// counts serin's own metric around the whole sequence (nothing else runs
// meanwhile) and serin's log per object, then checks the counting with an
// opted-in control.
func (e *env) testUnmanagedNeverSent(t *testing.T) {
	ns := e.c.Namespace(t)
	const hold, validate = "hold", "validate-deployment"
	total := func(webhook string) float64 {
		return e.metric(t, "serin_admission_requests_total", "webhook", webhook)
	}
	kubectl := func(stdin string, args ...string) {
		t.Helper()
		if _, err := e.c.Kubectl(context.Background(), stdin, args...); err != nil {
			t.Fatal(err)
		}
	}
	h0, v0 := total(hold), total(validate)
	checked := 0
	cases := []struct {
		name        string
		annotations map[string]string
		wantCheck   bool // the annotation checks see serin.dev/ annotations
	}{
		{"plain", nil, false},
		{"other-annotations", map[string]string{"example.com/team": "payments"}, false},
		{"disabled", map[string]string{v1alpha1.AnnotationCanary: "disabled", v1alpha1.AnnotationStepWeight: "20"}, true},
	}
	for _, tc := range cases {
		d := deploy{ns: ns, name: tc.name, image: "6.0.0", annotations: tc.annotations}
		kubectl(d.yaml(), "apply", "-f", "-")
		d.image = "6.0.1"
		kubectl(d.yaml(), "apply", "-f", "-")
		kubectl(d.yaml(), "apply", "--server-side", "--force-conflicts", "-f", "-")
		d.image = "6.0.2"
		kubectl(d.yaml(), "apply", "--dry-run=server", "-f", "-")
		kubectl("", "label", "-n", ns, "deployment/"+tc.name, "team=payments")
		kubectl("", "scale", "-n", ns, "deployment/"+tc.name, "--replicas=2")
		kubectl("", "rollout", "restart", "-n", ns, "deployment/"+tc.name)
		kubectl("", "set", "image", "-n", ns, "deployment/"+tc.name, "app=ghcr.io/stefanprodan/podinfo:6.0.3")
	}
	for _, tc := range cases {
		e.settled(t, ns, tc.name)
		got := e.calls("deployments", ns, tc.name)
		if n := len(callsOf(got, hold)); n != 0 {
			t.Errorf("%s: the hold webhook was called %d times: %+v", tc.name, n, got)
		}
		// The annotation checks see the serin.dev/ annotations of the
		// disabled one when they are set: at create (and on the dry run of
		// a create), and again whenever the API server retries a request
		// that conflicted with the Deployment controller's status write.
		// Later updates leave them alone and are not sent.
		n := len(callsOf(got, validate))
		checked += n
		if (tc.wantCheck && (n < 1 || n > 3)) || (!tc.wantCheck && n != 0) {
			t.Errorf("%s: the annotation checks were called %d times, want %v", tc.name, n, tc.wantCheck)
		}
	}
	h1, v1 := total(hold), total(validate)
	t.Logf("serin_admission_requests_total around 24 user requests on 3 unmanaged Deployments: hold %v → %v, validate-deployment %v → %v (log: %d)",
		h0, h1, v0, v1, checked)
	if h1 != h0 {
		t.Errorf("serin_admission_requests_total{webhook=hold} went from %v to %v for unmanaged Deployments", h0, h1)
	}
	if int(v1-v0) != checked {
		t.Errorf("serin_admission_requests_total{webhook=validate-deployment} went from %v to %v, the log has %d", v0, v1, checked)
	}

	// The control: the same count sees one opted-in dry-run create.
	ctl := deploy{ns: ns, name: "control", image: "6.0.0", annotations: enabled}
	kubectl(ctl.yaml(), "apply", "--dry-run=server", "-f", "-")
	if h2 := total(hold); h2 != h1+1 {
		t.Errorf("control: serin_admission_requests_total{webhook=hold} went from %v to %v, want +1", h1, h2)
	}
	if got := callsOf(e.calls("deployments", ns, "control"), hold); len(got) != 1 || !got[0].DryRun {
		t.Errorf("control: hold calls %+v, want one dry run", got)
	}
}

// settled waits until the Deployment controller has caught up with the
// Deployment (observed its generation; set its revision annotation unless
// it is paused). Its writes go to the status subresource, which the
// webhooks do not see, but a user's patch that conflicts with one is
// retried by the API server, admission included: a test that counts calls
// waits for this first.
func (e *env) settled(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, 30*time.Second, "the Deployment controller's sync of "+name, func() error {
		d := e.get(t, ns, name)
		if d.Status.ObservedGeneration < d.Generation || (!d.Spec.Paused && d.Annotations["deployment.kubernetes.io/revision"] == "") {
			return fmt.Errorf("observed generation %d of %d", d.Status.ObservedGeneration, d.Generation)
		}
		return nil
	})
}

// noWrite runs op, which must not write the Deployment, and checks that
// the API server stored nothing: the resourceVersion is unchanged. The
// Deployment controller may write status concurrently; such a window
// (same generation, spec and metadata) is retried.
func (e *env) noWrite(t *testing.T, ns, name, what string, op func()) {
	t.Helper()
	for try := 0; try < 5; try++ {
		before := e.get(t, ns, name)
		op()
		after := e.get(t, ns, name)
		if before.ResourceVersion == after.ResourceVersion {
			return
		}
		if diff := objectDiff(before, after); diff != "" {
			t.Fatalf("%s changed the Deployment: %s", what, diff)
		}
		t.Logf("%s: resourceVersion %s → %s with only status changes (the Deployment controller); again",
			what, before.ResourceVersion, after.ResourceVersion)
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: the Deployment's status kept changing; cannot tell whether it wrote", what)
}

// objectDiff names what differs between two versions of a Deployment
// besides status and resourceVersion.
func objectDiff(a, b *appsv1.Deployment) string {
	var diffs []string
	if a.Generation != b.Generation {
		diffs = append(diffs, fmt.Sprintf("generation %d → %d", a.Generation, b.Generation))
	}
	for what, pair := range map[string][2]any{
		"spec": {a.Spec, b.Spec}, "annotations": {a.Annotations, b.Annotations}, "labels": {a.Labels, b.Labels},
		"managedFields": {specFields(a), specFields(b)},
	} {
		x, _ := json.Marshal(pair[0])
		y, _ := json.Marshal(pair[1])
		if string(x) != string(y) {
			diffs = append(diffs, fmt.Sprintf("%s %s → %s", what, x, y))
		}
	}
	return strings.Join(diffs, "; ")
}

// specFields are the managed fields entries of the object itself (not of
// its status subresource, whose timestamps move with every status write).
func specFields(d *appsv1.Deployment) []metav1.ManagedFieldsEntry {
	var out []metav1.ManagedFieldsEntry
	for _, m := range d.ManagedFields {
		if m.Subresource == "" {
			out = append(out, m)
		}
	}
	return out
}
