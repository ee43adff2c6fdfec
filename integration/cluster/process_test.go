package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProcessStop(t *testing.T) {
	dir := t.TempDir()
	// The shell ignores SIGTERM: Stop has to fall back to SIGKILL.
	p, err := StartProcess("stubborn", "sh", []string{"-c", `trap "" TERM; echo up; while :; do sleep 0.05; done`},
		ProcessOptions{Log: filepath.Join(dir, "stubborn.log"), Header: "=== start", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if exited, _ := p.Exited(); exited {
		t.Fatal("exited at once")
	}
	waitLog(t, p.LogPath, "up")
	began := time.Now()
	p.Stop(200 * time.Millisecond)
	if exited, _ := p.Exited(); !exited {
		t.Fatal("still running after Stop")
	}
	if d := time.Since(began); d < 200*time.Millisecond {
		t.Errorf("stopped after %s, before the grace period", d)
	}
	if got := Tail(p.LogPath, 5); got != "=== start\nup" {
		t.Errorf("log %q", got)
	}
}

func TestProcessKill(t *testing.T) {
	dir := t.TempDir()
	p, err := StartProcess("sleep", "sleep", []string{"60"}, ProcessOptions{Log: filepath.Join(dir, "sleep.log")})
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Kill")
	}
	if _, err := p.Exited(); err == nil {
		t.Error("a killed process ended without an error")
	}
}

func TestStopPIDFile(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "sleep.pid")
	p, err := StartProcess("sleep", "sleep", []string{"60"}, ProcessOptions{Log: filepath.Join(dir, "sleep.log"), PIDFile: pidFile, Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := StopPIDFile(ctx, pidFile); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if err := StopPIDFile(ctx, filepath.Join(dir, "none.pid")); err != nil {
		t.Errorf("missing pid file: %v", err)
	}
}

func waitLog(t *testing.T, path, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), want) {
			return
		}
	}
	t.Fatalf("%s never logged %q", path, want)
}
