package app

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/serin-dev/serin/compat/migrate"
)

func newImportCmd() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "import -f FILE|DIR|- [-f ...]",
		Short: "Print serin's objects for Flagger's manifests (flagger.app Canary, MetricTemplate, AlertProvider)",
		Long: "import reads Flagger's manifests and prints serin's objects on stdout: annotations on the Deployment " +
			"where they express a Canary's spec (the Deployment with its annotations when the input holds it, else " +
			"a patch of its annotations), a serin.dev Canary where they do not, serin's MetricTemplates and " +
			"AlertProviders, and every other object unchanged. Fields serin ignores are listed as comments and on stderr.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return &exitError{code: 2, err: fmt.Errorf("no input: give -f FILE, -f DIR or -f -")}
			}
			var sources []migrate.Source
			for _, f := range files {
				s, err := readSources(f, cmd.InOrStdin())
				if err != nil {
					return err
				}
				sources = append(sources, s...)
			}
			out, err := migrate.Import(sources)
			if err != nil {
				return err
			}
			for _, n := range out.Notes {
				fmt.Fprintln(cmd.ErrOrStderr(), n)
			}
			_, err = cmd.OutOrStdout().Write(out.YAML)
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "a YAML or JSON file, a directory of them, or - for stdin (repeatable)")
	return cmd
}

// readSources reads a file, stdin ("-") or every .yaml, .yml and .json
// file under a directory, in lexical order.
func readSources(path string, stdin io.Reader) ([]migrate.Source, error) {
	if path == "-" {
		b, err := io.ReadAll(stdin)
		return []migrate.Source{{Name: "<stdin>", Data: b}}, err
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		b, err := os.ReadFile(path)
		return []migrate.Source{{Name: path, Data: b}}, err
	}
	var paths []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := strings.ToLower(filepath.Ext(p))
		if !d.IsDir() && slices.Contains([]string{".yaml", ".yml", ".json"}, ext) {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	var out []migrate.Source
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, migrate.Source{Name: p, Data: b})
	}
	return out, nil
}
