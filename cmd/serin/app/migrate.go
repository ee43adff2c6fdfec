package app

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/serin-dev/serin/compat/migrate"
)

func newMigrateCmd(conn *connFlags) *cobra.Command {
	var all bool
	t := &migrate.Takeover{}
	cmd := &cobra.Command{
		Use:   "migrate [NAME]",
		Short: "Take over the flagger.app Canaries Flagger was running (dry run unless --apply)",
		Long: "migrate hands the Canaries a Flagger controller was running over to serin, one at a time, each step " +
			"idempotent (run it again after an interruption and it continues): the user's Deployment comes back up " +
			"on the pod template Flagger's <name>-primary runs, with its replicas; once its pods are ready the " +
			"Service <name> selects them; after a drain Flagger's routes, <name>-primary Deployment, its autoscaler " +
			"and its Services go (only objects the flagger.app Canary owns); serin's Canary of the same name is " +
			"created and initialized; the flagger.app Canary is deleted last. Without --apply it prints the steps. " +
			"It refuses Canaries mid-release and while Flagger's controller appears to run, unless --force.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := conn.client()
			if err != nil {
				return err
			}
			if all {
				ns = ""
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			t.Client, t.Out, t.Poll = c, cmd.OutOrStdout(), 500*time.Millisecond
			return t.Run(cmd.Context(), ns, name)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all-namespaces", "A", false, "take over the Canaries of every namespace")
	f.BoolVar(&t.Apply, "apply", false, "carry the steps out (default: print them)")
	f.BoolVar(&t.Force, "force", false, "take over Canaries mid-release, or while Flagger's controller appears to run")
	f.DurationVar(&t.Settle, "settle", 3*time.Second, "how long to watch the Canaries for changes a running Flagger makes")
	f.DurationVar(&t.Drain, "drain", 10*time.Second, "how long the primary's pods keep serving after traffic moved away from them")
	f.DurationVar(&t.Timeout, "timeout", 5*time.Minute, "how long each wait may take")
	return cmd
}
