package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

// startDetached runs bin in a session of its own, so it outlives the demo,
// logging to <dir>/<name>.log with its pid in <dir>/<name>.pid (where
// `make cluster-down` finds it).
func startDetached(dir, name, bin string, args ...string) (*cluster.Process, error) {
	return cluster.StartProcess(name, bin, args, cluster.ProcessOptions{
		Log: filepath.Join(dir, name+".log"), Dir: dir, PIDFile: filepath.Join(dir, name+".pid"), Detach: true,
	})
}

// stopPIDFile ends the process recorded in <dir>/<name>.pid, if any, and
// removes the file.
func stopPIDFile(ctx context.Context, dir, name string) error {
	path := filepath.Join(dir, name+".pid")
	if err := cluster.StopPIDFile(ctx, path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// waitOK polls url until it answers 200, or the process exits.
func waitOK(ctx context.Context, url string, p *cluster.Process) error {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if exited, _ := p.Exited(); exited {
			return fmt.Errorf("process %d exited; see %s", p.Pid(), p.LogPath)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w; see %s", url, ctx.Err(), p.LogPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
