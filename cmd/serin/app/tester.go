package app

import (
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/serin-dev/serin/analysis/tester"
)

// testerOptions are the flags of serin tester.
type testerOptions struct {
	address         string
	allowBash       bool
	allowedCommands []string
	timeout         time.Duration
	logFormat       string
}

func newTesterCmd() *cobra.Command {
	o := testerOptions{}
	cmd := &cobra.Command{
		Use:   "tester",
		Short: "Run the release hooks companion: gates (/gate/..., /rollback/...) and a load and acceptance command runner",
		Long: `serin tester answers Canary webhooks the way Flagger's load tester does:
gates (/gate/approve, /gate/halt, /gate/check, /gate/open, /gate/close,
/rollback/check, /rollback/open, /rollback/close) and, on POST /, runs the
command in metadata.cmd (by default only hey, curl, grpcurl and ghz; bash
scripts only with --allow-bash).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := zap.New(zap.UseDevMode(o.logFormat == "console")).WithName("tester")
			return tester.Run(cmd.Context(), o.address, tester.Options{
				AllowedCommands: o.allowedCommands, AllowBash: o.allowBash, Timeout: o.timeout, Log: log,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.address, "address", ":8080", "listen address")
	f.BoolVar(&o.allowBash, "allow-bash", false, "allow hooks of type bash (bash -c with any script)")
	f.StringSliceVar(&o.allowedCommands, "allowed-commands", tester.DefaultAllowedCommands, "programs hooks of type cmd may run")
	f.DurationVar(&o.timeout, "timeout", tester.DefaultTimeout, "longest a command may run")
	f.StringVar(&o.logFormat, "log-format", "json", "json or console")
	return cmd
}
