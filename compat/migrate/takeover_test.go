package migrate

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/serin-dev/serin/api/flaggerv1beta1"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/internal/scheme"
)

// takeoverOn is a Takeover (dry run unless told) on a fake API server
// holding the state Flagger leaves, edited by edit.
func takeoverOn(t *testing.T, edit func(st *State) []client.Object) (*Takeover, *bytes.Buffer) {
	t.Helper()
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	st := flaggerState()
	objs := []client.Object{st.Flagger, st.Target, st.Primary, st.PrimaryHPA, st.Apex, st.Services[0], st.Services[1]}
	for _, o := range objs {
		o.SetNamespace("test")
	}
	if edit != nil {
		objs = append(objs, edit(st)...)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
	var out bytes.Buffer
	return &Takeover{Client: c, Out: &out}, &out
}

func TestTakeoverDryRun(t *testing.T) {
	tk, out := takeoverOn(t, nil)
	if err := tk.Run(context.Background(), "test", ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"canary test/podinfo (Flagger phase Succeeded): dry run", "1. scale Deployment podinfo to 4 replicas",
		"point Service podinfo at the pods of Deployment podinfo (selector app=podinfo)", "delete Deployment podinfo-primary",
		"delete Service podinfo-canary", "create serin.dev Canary podinfo", "delete flagger.app Canary podinfo"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	var d appsv1.Deployment
	if err := tk.Client.Get(context.Background(), client.ObjectKey{Namespace: "test", Name: "podinfo"}, &d); err != nil || *d.Spec.Replicas != 0 {
		t.Fatalf("the dry run wrote: %v %v", err, d.Spec.Replicas)
	}
}

// TestTakeoverRefuses: mid-release, or with Flagger's controller up,
// nothing is taken over unless forced; a Canary serin runs through
// flagger.compat is left as it is.
func TestTakeoverRefuses(t *testing.T) {
	flagger := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "flagger", Namespace: "flagger-system"},
		Status: appsv1.DeploymentStatus{AvailableReplicas: 1}}
	for name, tc := range map[string]struct {
		edit  func(st *State) []client.Object
		force bool
		want  string
		fails bool
	}{
		"progressing": {edit: func(st *State) []client.Object { st.Flagger.Status.Phase = v1alpha1.PhaseProgressing; return nil },
			want: `refused: phase "Progressing" is not between releases`, fails: true},
		"flagger runs": {edit: func(*State) []client.Object { return []client.Object{flagger.DeepCopy()} },
			want: "refused: Flagger's controller appears to be running (Deployment flagger-system/flagger has 1 available pods)", fails: true},
		"forced": {edit: func(*State) []client.Object { return []client.Object{flagger.DeepCopy()} }, force: true,
			want: "dry run, --apply carries out"},
		"compat": {edit: func(st *State) []client.Object {
			mirror := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "test", OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "flagger.app/v1beta1", Kind: "Canary", Name: "podinfo", UID: canaryUID, Controller: ptr.To(true)}}}}
			return []client.Object{mirror}
		}, want: "serin already runs it (flagger.compat)"},
	} {
		t.Run(name, func(t *testing.T) {
			tk, out := takeoverOn(t, tc.edit)
			tk.Force = tc.force
			err := tk.Run(context.Background(), "test", "podinfo")
			if (err != nil) != tc.fails || !strings.Contains(out.String(), tc.want) {
				t.Fatalf("err %v, output:\n%s\nwant %q", err, out, tc.want)
			}
		})
	}
}

// TestTakeoverRefusesChangingCanary: a Canary written to while watched
// (as a running Flagger writes its status) is refused.
func TestTakeoverRefusesChangingCanary(t *testing.T) {
	tk, out := takeoverOn(t, nil)
	tk.Settle = time.Second
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		var fc flaggerv1beta1.Canary
		if err := tk.Client.Get(ctx, client.ObjectKey{Namespace: "test", Name: "podinfo"}, &fc); err != nil {
			done <- err
			return
		}
		fc.Labels = map[string]string{"touched": "yes"}
		done <- tk.Client.Update(ctx, &fc)
	}()
	err := tk.Run(ctx, "test", "")
	if werr := <-done; werr != nil {
		t.Fatal(werr)
	}
	if err == nil || !strings.Contains(out.String(), "it changed while watched") {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
}

// TestTakeoverAgain: run again after the takeover, migrate says so.
func TestTakeoverAgain(t *testing.T) {
	tk, out := takeoverOn(t, func(*State) []client.Object {
		return []client.Object{&v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "test"}}}
	})
	if err := tk.Run(context.Background(), "test", "web"); err != nil || !strings.Contains(out.String(), "taken over already") {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
	if err := tk.Run(context.Background(), "test", "nothing"); err == nil || !strings.Contains(err.Error(), "flagger.app Canary nothing not found") {
		t.Fatalf("unknown canary: %v", err)
	}
}
