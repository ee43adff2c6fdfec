// Command serin is the release controller (`serin controller`), its CLI
// (`serin get|promote|abort|retry|pause|resume|wait`, also usable as the
// kubectl plugin `kubectl serin`) and the test companion (`serin tester`).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/serin-dev/serin/cmd/serin/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
