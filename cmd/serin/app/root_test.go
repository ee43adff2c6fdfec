package app

import (
	"io"
	"slices"
	"testing"
)

// TestRootCommands checks that the root command lists every subcommand
// and that the connection flags reach the commands that use them.
func TestRootCommands(t *testing.T) {
	root := newRoot(io.Discard, io.Discard)
	var names []string
	for _, c := range root.Commands() {
		names = append(names, c.Name())
	}
	want := []string{"abort", "controller", "get", "import", "migrate", "pause", "promote", "resume", "retry", "tester", "uninstall", "version", "wait"}
	for _, n := range want {
		if !slices.Contains(names, n) {
			t.Errorf("no %q subcommand in %v", n, names)
		}
	}
	for _, n := range []string{"get", "controller"} {
		cmd, _, err := root.Find([]string{n})
		if err != nil {
			t.Fatal(err)
		}
		if cmd.Flag("kubeconfig") == nil || cmd.Flag("context") == nil {
			t.Errorf("%s has no connection flags", n)
		}
	}
}
