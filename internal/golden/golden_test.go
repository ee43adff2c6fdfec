package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

type testCase struct {
	Name  string `yaml:"name"`
	Count int    `yaml:"count"`
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadCases(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", "name: first\ncount: 1\n")
	write(t, dir, "b-c.yaml", "name: second\n")
	write(t, dir, "notes.txt", "not a case")
	got := ReadCases[testCase](t, dir)
	want := map[string]testCase{"a": {Name: "first", Count: 1}, "b-c": {Name: "second"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// fatalTB records the first fatal message and ends the goroutine there.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatal(args ...any) { f.msg = fmt.Sprint(args...); runtime.Goexit() }

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatal runs ReadCases on dir and returns its fatal message ("" if none).
func fatal(t *testing.T, dir string) string {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ReadCases[testCase](f, dir)
	}()
	<-done
	return f.msg
}

func TestReadCasesStrict(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "typo.yaml", "name: x\ncuont: 2\n")
	if msg := fatal(t, dir); !strings.Contains(msg, "typo.yaml") || !strings.Contains(msg, "cuont") {
		t.Errorf("unknown field: fatal message %q", msg)
	}
}

func TestReadCasesEmpty(t *testing.T) {
	dir := t.TempDir()
	if msg := fatal(t, dir); !strings.Contains(msg, "no cases in "+dir) {
		t.Errorf("empty dir: fatal message %q", msg)
	}
}
