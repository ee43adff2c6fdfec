package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportCmd reads a directory (in lexical order) and stdin, prints
// the objects on stdout and the ignored fields on stderr.
func TestImportCmd(t *testing.T) {
	dir := t.TempDir()
	canary := "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: web, namespace: x}\n" +
		"spec:\n  provider: nginx\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  service: {port: 80}\n"
	for name, body := range map[string]string{
		"b.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: second}\n",
		"a.yml":    canary,
		"skip.txt": "not yaml",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	root := newRoot(&stdout, &stderr)
	root.SetIn(strings.NewReader("apiVersion: v1\nkind: Secret\nmetadata: {name: third}\n"))
	root.SetArgs([]string{"import", "-f", dir, "-f", "-"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	iCanary, iCM, iSecret := strings.Index(out, "kind: Canary"), strings.Index(out, "name: second"), strings.Index(out, "name: third")
	if !strings.Contains(out, "apiVersion: serin.dev/v1alpha1") || iCanary < 0 || iCanary > iCM || iCM > iSecret {
		t.Fatalf("stdout:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "Canary x/web: serin ignores spec.provider=nginx") {
		t.Fatalf("stderr: %s", stderr.String())
	}
	if code := Execute(context.Background(), []string{"import"}, &stdout, &stderr); code != 2 {
		t.Fatalf("import without -f exited %d, want 2", code)
	}
}
