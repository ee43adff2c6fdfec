package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func newGetCmd(conn *connFlags) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "get [NAME]",
		Short: "List canaries with their steps and last verdict",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := conn.client()
			if err != nil {
				return err
			}
			var list v1alpha1.CanaryList
			opts := []client.ListOption{}
			if !all {
				opts = append(opts, client.InNamespace(ns))
			}
			if err := c.List(cmd.Context(), &list, opts...); err != nil {
				return err
			}
			var deps []*appsv1.Deployment
			var shown []v1alpha1.Canary
			for _, cn := range list.Items {
				if len(args) == 1 && cn.Name != args[0] {
					continue
				}
				var d appsv1.Deployment
				name := cn.Spec.TargetRef.Name
				if name == "" {
					name = cn.Name
				}
				if err := c.Get(cmd.Context(), types.NamespacedName{Namespace: cn.Namespace, Name: name}, &d); err != nil {
					deps = append(deps, nil)
				} else {
					deps = append(deps, &d)
				}
				shown = append(shown, cn)
			}
			if len(args) == 1 && len(shown) == 0 {
				return fmt.Errorf("canary %q not found in namespace %s", args[0], ns)
			}
			return printCanaries(cmd.OutOrStdout(), shown, deps, all, time.Now())
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list canaries in every namespace")
	return cmd
}

// printCanaries writes the table of serin get.
func printCanaries(w io.Writer, list []v1alpha1.Canary, deps []*appsv1.Deployment, withNS bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if withNS {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "NAME\tSTATUS\tWEIGHT\tSTEPS\tFAILED\tLAST VERDICT\tAGE")
	for i, c := range list {
		spec, _ := v1alpha1.ResolveSpec(&c, deps[i])
		if withNS {
			fmt.Fprintf(tw, "%s\t", c.Namespace)
		}
		verdict := c.Status.LastVerdict
		if verdict == "" {
			verdict = "-"
		}
		age := "-"
		if !c.Status.LastTransitionTime.IsZero() {
			age = duration.HumanDuration(now.Sub(c.Status.LastTransitionTime.Time))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d/%d\t%s\t%s\n", c.Name, phaseOr(c.Status.Phase), c.Status.CanaryWeight,
			steps(&spec, &c.Status), c.Status.FailedChecks, spec.Analysis.Threshold, verdict, age)
	}
	return tw.Flush()
}

func phaseOr(p v1alpha1.CanaryPhase) string {
	if p == "" {
		return "-"
	}
	return string(p)
}

// steps renders the release's steps with the current one in brackets,
// e.g. "10 [20] 30 40 50" or "iteration 3/10".
func steps(spec *v1alpha1.CanarySpec, st *v1alpha1.CanaryStatus) string {
	if spec.Strategy() != v1alpha1.StrategyCanary {
		return fmt.Sprintf("iteration %d/%d", st.Iterations, spec.Analysis.Iterations)
	}
	var parts []string
	if spec.Analysis.Mirror {
		p := "mirror"
		if st.Mirroring {
			p = "[mirror]"
		}
		parts = append(parts, p)
	}
	for _, w := range spec.Weights() {
		p := strconv.Itoa(int(w))
		if w == st.CanaryWeight && !st.Mirroring && st.Phase == v1alpha1.PhaseProgressing {
			p = "[" + p + "]"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

func newActionCmd(conn *connFlags, verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := conn.client()
			if err != nil {
				return err
			}
			value := fmt.Sprintf("%s/%d", verb, time.Now().UnixNano())
			if err := annotate(cmd.Context(), c, ns, args[0], v1alpha1.AnnotationAction, &value); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "canary %s/%s: %s requested\n", ns, args[0], verb)
			return err
		},
	}
}

func newPromoteCmd(conn *connFlags) *cobra.Command {
	return newActionCmd(conn, v1alpha1.ActionPromote, "Promote the running release now, skipping the remaining steps")
}

func newAbortCmd(conn *connFlags) *cobra.Command {
	return newActionCmd(conn, v1alpha1.ActionAbort, "Roll the running release back")
}

func newRetryCmd(conn *connFlags) *cobra.Command {
	return newActionCmd(conn, v1alpha1.ActionRetry, "Run a failed revision's release again")
}

func newPauseCmd(conn *connFlags) *cobra.Command {
	return &cobra.Command{
		Use: "pause NAME", Short: "Pause a release where it is (traffic unchanged)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := conn.client()
			if err != nil {
				return err
			}
			v := "true"
			if err := annotate(cmd.Context(), c, ns, args[0], v1alpha1.AnnotationPaused, &v); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "canary %s/%s paused\n", ns, args[0])
			return err
		},
	}
}

func newResumeCmd(conn *connFlags) *cobra.Command {
	return &cobra.Command{
		Use: "resume NAME", Short: "Resume a paused release", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := conn.client()
			if err != nil {
				return err
			}
			if err := annotate(cmd.Context(), c, ns, args[0], v1alpha1.AnnotationPaused, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "canary %s/%s resumed\n", ns, args[0])
			return err
		},
	}
}

// annotate sets (or, with nil, removes) an annotation on a Canary.
func annotate(ctx context.Context, c client.Client, ns, name, key string, value *string) error {
	var cn v1alpha1.Canary
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &cn); err != nil {
		return err
	}
	patch := client.MergeFrom(cn.DeepCopy())
	if value == nil {
		delete(cn.Annotations, key)
	} else {
		if cn.Annotations == nil {
			cn.Annotations = map[string]string{}
		}
		cn.Annotations[key] = *value
	}
	return c.Patch(ctx, &cn, patch)
}

func newWaitCmd(conn *connFlags) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait NAME",
		Short: "Wait for the release of the Deployment's current revision: exit 0 when promoted, 1 when rolled back",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := conn.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			last := ""
			for {
				res, msg, err := releaseResult(ctx, c, ns, args[0])
				if err != nil && !apierrors.IsNotFound(err) {
					return err
				}
				if msg != last && msg != "" {
					fmt.Fprintln(cmd.OutOrStdout(), msg)
					last = msg
				}
				switch res {
				case v1alpha1.PhaseSucceeded:
					return nil
				case v1alpha1.PhaseFailed:
					return &exitError{code: 1, err: fmt.Errorf("release of %s/%s failed", ns, args[0])}
				}
				select {
				case <-ctx.Done():
					return &exitError{code: 3, err: fmt.Errorf("timed out waiting for %s/%s: %w", ns, args[0], ctx.Err())}
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait")
	return cmd
}

// releaseResult says how the release of the Deployment's current template
// ended (Succeeded, Failed) or "" while it runs, with a progress line.
func releaseResult(ctx context.Context, c client.Client, ns, name string) (v1alpha1.CanaryPhase, string, error) {
	var cn v1alpha1.Canary
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &cn); err != nil {
		return "", "", err
	}
	target := cn.Spec.TargetRef.Name
	if target == "" {
		target = cn.Name
	}
	var d appsv1.Deployment
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: target}, &d); err != nil {
		return "", "", err
	}
	rev := v1alpha1.TemplateHash(&d.Spec.Template)
	st := cn.Status
	msg := fmt.Sprintf("%s weight %d %s", phaseOr(st.Phase), st.CanaryWeight, st.Message)
	switch {
	case st.Phase == v1alpha1.PhaseFailed && containsString(st.FailedRevisions, rev):
		return v1alpha1.PhaseFailed, msg, nil
	case (st.Phase == v1alpha1.PhaseSucceeded || st.Phase == v1alpha1.PhaseInitialized) && st.StableRevision == rev && !d.Spec.Paused:
		return v1alpha1.PhaseSucceeded, msg, nil
	}
	return "", msg, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func newUninstallCmd(conn *connFlags) *cobra.Command {
	var timeout time.Duration
	var webhookName string
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Give every Deployment back (unpaused, serin's objects removed) before serin is removed",
		Long: "uninstall removes serin's webhook configurations so nothing new is held, deletes every Canary " +
			"and waits while serin's controller gives each Deployment back: traffic to stable, canary copies " +
			"deleted, Deployments unpaused. Run it before `helm uninstall` (the chart's pre-delete hook does).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := conn.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			for _, obj := range []client.Object{
				&admissionregistrationv1.MutatingWebhookConfiguration{},
				&admissionregistrationv1.ValidatingWebhookConfiguration{},
			} {
				obj.SetName(webhookName)
				if err := c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
					return fmt.Errorf("delete webhook configuration: %w", err)
				}
			}
			var list v1alpha1.CanaryList
			if err := c.List(ctx, &list); err != nil {
				return err
			}
			for i := range list.Items {
				if err := c.Delete(ctx, &list.Items[i]); client.IgnoreNotFound(err) != nil {
					return err
				}
			}
			for {
				if err := c.List(ctx, &list); err != nil {
					return err
				}
				if len(list.Items) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "every Deployment was given back; serin can be removed")
					return nil
				}
				select {
				case <-ctx.Done():
					return errors.Join(fmt.Errorf("%d canaries still terminating (is serin's controller running?)", len(list.Items)), ctx.Err())
				case <-time.After(time.Second):
				}
			}
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait")
	cmd.Flags().StringVar(&webhookName, "webhook-config-name", "serin", "name of serin's webhook configurations")
	return cmd
}
