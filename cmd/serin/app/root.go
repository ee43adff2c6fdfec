// Package app holds serin's subcommands: flags, wiring and exit codes. The
// work itself lives in the packages it wires together.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// Version is stamped at build time with -ldflags "-X ...app.Version=v1.2.3".
var Version = "dev"

// exitError carries a specific exit code (serin wait uses 1 for a failed
// release, 2 for bad usage).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "Error:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "serin",
		Short:         "Progressive delivery for Kubernetes: every kubectl apply becomes a canary release",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// As a kubectl plugin (kubectl-serin) the usage says "kubectl serin".
	if strings.HasPrefix(filepath.Base(os.Args[0]), "kubectl-") {
		root.Use = "kubectl serin"
	}
	conn := &connFlags{}
	conn.AddFlags(root.PersistentFlags())
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newVersionCmd(),
		newGetCmd(conn),
		newPromoteCmd(conn),
		newAbortCmd(conn),
		newRetryCmd(conn),
		newPauseCmd(conn),
		newResumeCmd(conn),
		newWaitCmd(conn),
		newUninstallCmd(conn),
		newImportCmd(),
		newMigrateCmd(conn),
		newControllerCmd(conn),
		newXDSCertCmd(conn),
		newTesterCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print serin's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "serin", Version)
			return err
		},
	}
}
