package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/harness"
)

// release applies podinfo at version and shows the release live until it
// ends in want.
func (d *demo) release(ctx context.Context, version, env, title string, want v1alpha1.CanaryPhase) error {
	fmt.Fprintf(d.out, "\n== Release %s: kubectl apply podinfo %s\n", title, version)
	p := &progress{d: d, seenEvents: map[types.UID]bool{}}
	p.markOldEvents(ctx)
	if _, err := d.kubectl(ctx, harness.PodinfoDeployment(demoNamespace, version, 3, env), "apply", "-f", "-"); err != nil {
		return err
	}
	var dep appsv1.Deployment
	if err := d.cl.Get(ctx, types.NamespacedName{Namespace: demoNamespace, Name: "podinfo"}, &dep); err != nil {
		return err
	}
	rev := v1alpha1.TemplateHash(&dep.Spec.Template)
	began := time.Now()
	st, err := d.waitPhase(ctx, want, rev, 3*time.Minute, p.show)
	if err != nil {
		return err
	}
	verb := "promoted"
	if want == v1alpha1.PhaseFailed {
		verb = "rolled back"
	}
	d.say("podinfo %s %s in %s%s", version, verb, time.Since(began).Round(100*time.Millisecond), suffix(st.Message))
	return nil
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}

// waitPhase polls the Canary until it reaches phase for revision rev (any
// revision when empty), calling show with every status it reads.
func (d *demo) waitPhase(ctx context.Context, phase v1alpha1.CanaryPhase, rev string, timeout time.Duration,
	show func(context.Context, v1alpha1.CanaryStatus)) (v1alpha1.CanaryStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var c v1alpha1.Canary
		if err := d.cl.Get(ctx, types.NamespacedName{Namespace: demoNamespace, Name: "podinfo"}, &c); err == nil {
			st := c.Status
			if show != nil {
				show(ctx, st)
			}
			succeeded := st.Phase == v1alpha1.PhaseSucceeded && st.StableRevision == rev
			failed := st.Phase == v1alpha1.PhaseFailed && slices.Contains(st.FailedRevisions, rev)
			switch {
			case rev == "" && st.Phase == phase:
				return st, nil
			case phase == v1alpha1.PhaseSucceeded && succeeded, phase == v1alpha1.PhaseFailed && failed:
				return st, nil
			case phase == v1alpha1.PhaseSucceeded && failed:
				return st, fmt.Errorf("the release failed: %s", st.Message)
			case phase == v1alpha1.PhaseFailed && succeeded:
				return st, fmt.Errorf("the release was promoted; it should have been rolled back")
			}
		}
		select {
		case <-ctx.Done():
			return v1alpha1.CanaryStatus{}, fmt.Errorf("waiting for phase %s: %w", phase, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// progress prints what changed: the phase, weight and failed checks with
// the traffic the client sees, each new verdict, and serin's events.
type progress struct {
	d          *demo
	last       string
	verdict    string
	seenEvents map[types.UID]bool
}

func (p *progress) markOldEvents(ctx context.Context) {
	for _, ev := range p.events(ctx) {
		p.seenEvents[ev.UID] = true
	}
}

func (p *progress) show(ctx context.Context, st v1alpha1.CanaryStatus) {
	for _, ev := range p.events(ctx) {
		if !p.seenEvents[ev.UID] {
			p.seenEvents[ev.UID] = true
			fmt.Fprintf(p.d.out, "          event: %s\n", ev.Note)
		}
	}
	line := fmt.Sprintf("%-16s weight %3d%%  failed checks %d", st.Phase, st.CanaryWeight, st.FailedChecks)
	if line != p.last {
		p.last = line
		p.d.say("%s   traffic: %s", line, p.d.traffic.summary(2*time.Second))
	}
	if st.LastVerdict != "" && st.LastVerdict != p.verdict {
		p.verdict = st.LastVerdict
		fmt.Fprintf(p.d.out, "          verdict: %s\n", compactVerdict(st.LastVerdict))
	}
}

// events are the Canary's events, oldest first.
func (p *progress) events(ctx context.Context) []eventsv1.Event {
	var list eventsv1.EventList
	if err := p.d.cl.List(ctx, &list, client.InNamespace(demoNamespace)); err != nil {
		return nil
	}
	items := slices.DeleteFunc(list.Items, func(ev eventsv1.Event) bool { return ev.Regarding.Kind != "Canary" })
	sort.SliceStable(items, func(i, j int) bool { return items[i].EventTime.Before(&items[j].EventTime) })
	return items
}

// compactVerdict shortens a lastVerdict ("Promote: request-success-rate/
// canary=100% (min 99%) pass n=31 from prometheus; ...") to the values that
// matter: "Promote: success rate 100% (stable 100%), p99 495µs (stable
// 495µs), canary error rate 0% vs stable 0%, rollback evidence 0.03 (max 100)".
func compactVerdict(v string) string {
	decision, summary, _ := strings.Cut(v, ": ")
	samples := map[string]string{}
	for _, s := range strings.Split(summary, "; ") {
		k, val, ok := strings.Cut(s, "=")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		out := f[0]
		if strings.Contains(val, ") fail") || strings.HasSuffix(f[0], "fail") || slices.Contains(f, "fail") {
			out += " FAIL"
		}
		samples[k] = out
	}
	var parts []string
	add := func(label, canary, stable string) {
		c, ok := samples[canary]
		if !ok {
			return
		}
		if s, ok := samples[stable]; ok {
			parts = append(parts, fmt.Sprintf("%s %s (stable %s)", label, c, s))
		} else {
			parts = append(parts, fmt.Sprintf("%s %s", label, c))
		}
	}
	add("success rate", "request-success-rate/canary", "request-success-rate/stable")
	add("p99", "request-duration/canary", "request-duration/stable")
	add("error rate", "error-rate/canary", "error-rate/stable")
	add("rollback evidence", "rollback-evidence", "")
	if len(parts) == 0 {
		return v
	}
	return decision + ": " + strings.Join(parts, ", ")
}

// goodbye says what is left running and how to look around.
func (d *demo) goodbye() {
	kubectl := d.rel(d.o.bin) + "/kubectl"
	fmt.Fprintf(d.out, `
Demo done in %s. Everything is left running (stop it all with: make cluster-down):
  export KUBECONFIG=%s
  %s get canaries -n demo                  # phase, weight
  %s describe canary podinfo -n demo       # status and events
  %s/serin get -n demo --kubeconfig $KUBECONFIG   # steps and last verdict
  Prometheus: %s   (try serin_canary_weight, serin_analysis_checks_total,
              istio_requests_total{destination_workload_namespace="demo"})
  serin log: %s; a 5 requests/s background load keeps the Prometheus graphs alive
  Grafana dashboard for these metrics: charts/serin/dashboards/serin.json
`, time.Since(d.start).Round(100*time.Millisecond), d.kubeconfig, kubectl, kubectl, d.rel(d.o.bin), d.prom.URL,
		d.rel(d.o.dir)+"/"+procSerin+".log")
}
