package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// sourceDateEpoch is the time every file, layer and document carries:
// SOURCE_DATE_EPOCH when set, else the commit time of HEAD.
func sourceDateEpoch(ctx context.Context, root string) (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		out, err := git(ctx, root, "log", "-1", "--format=%ct")
		if err != nil {
			return time.Time{}, fmt.Errorf("no SOURCE_DATE_EPOCH and no commit time: %w", err)
		}
		s = out
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// git runs git in root and returns its trimmed output.
func git(ctx context.Context, root string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// goBuild builds ./cmd/serin static for goos/goarch into out, stripped,
// without paths of the build machine, with the version stamped.
func goBuild(ctx context.Context, root, goos, goarch, version, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=auto",
		"-ldflags", "-s -w -buildid= -X github.com/serin-dev/serin/cmd/serin/app.Version="+version,
		"-o", out, "./cmd/serin")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s/%s: %w: %s", goos, goarch, err, b)
	}
	return nil
}

// binaryPath is where the binary of a platform is built under out.
func binaryPath(out, goos, goarch string) string {
	return filepath.Join(out, "bin", fmt.Sprintf("serin-%s-%s", goos, goarch))
}
