// Command podsim serves the pods of a runtime-less (kwok) cluster on their loopback
// pod IPs. See package github.com/serin-dev/serin/integration/podsim.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"

	"github.com/serin-dev/serin/integration/podsim"
)

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "podsim:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("podsim", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config or in-cluster)")
	logLevel := fs.String("log-level", "info", "info, debug, trace, or a verbosity number")
	selector := fs.String("selector", "", "only serve pods matching this label selector")
	shutdown := fs.Duration("shutdown-timeout", podsim.DefaultShutdownTimeout, "how long requests in flight may run after a pod stops being served")
	refresh := fs.Duration("config-refresh", podsim.DefaultConfigRefresh, "how often the files of served pods' configMap, secret and projected volumes are read again")
	var namespaces []string
	fs.Func("namespace", `namespace to watch; repeatable or comma-separated; "all" or unset watches all`, func(v string) error {
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns == "all" {
				ns = ""
			}
			namespaces = append(namespaces, ns)
		}
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	verbosity, err := parseLogLevel(*logLevel)
	if err != nil {
		return err
	}
	logger := textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(verbosity)))
	klog.SetLogger(logger)

	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return podsim.Run(ctx, cfg, podsim.Options{
		Namespaces:      namespaces,
		LabelSelector:   *selector,
		Logger:          logger.WithName("podsim"),
		ShutdownTimeout: *shutdown,
		ConfigRefresh:   *refresh,
	})
}

func parseLogLevel(s string) (int, error) {
	switch s {
	case "info":
		return 0, nil
	case "debug":
		return 1, nil
	case "trace":
		return 2, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--log-level %q: want info, debug, trace or a number >= 0", s)
	}
	return n, nil
}
