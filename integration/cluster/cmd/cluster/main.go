// Command cluster starts and stops serin's local Kubernetes for people:
// `make cluster-up` and `make cluster-down` wrap it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

func main() {
	dir := flag.String("dir", ".cluster", "directory for the cluster's state, kubeconfig and logs")
	nodes := flag.Int("nodes", 3, "number of kwok nodes")
	cidr := flag.String("pod-cidr", "127.1.0.0/16", "pod IP range inside 127.0.0.0/8")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] up|down\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, flag.Arg(0), *dir, *nodes, *cidr); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cmd, dir string, nodes int, cidr string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	switch cmd {
	case "up":
		if _, err := os.Stat(filepath.Join(abs, "kube-apiserver.pid")); err == nil {
			return fmt.Errorf("a cluster is already up in %s (make cluster-down first)", abs)
		}
		start := time.Now()
		c, err := cluster.Start(ctx, cluster.Options{Dir: abs, Nodes: nodes, PodCIDR: cidr, Detach: true})
		if err != nil {
			return err
		}
		fmt.Printf("cluster up in %s (pods get IPs from %s, Services from %s, logs in %s)\n", time.Since(start).Round(100*time.Millisecond), c.PodCIDR, c.ServiceCIDR, abs)
		fmt.Printf("export KUBECONFIG=%s\n", c.Kubeconfig)
		return nil
	case "down":
		if err := cluster.StopDir(ctx, abs); err != nil {
			return err
		}
		fmt.Println("cluster down")
		return nil
	default:
		return fmt.Errorf("unknown command %q: want up or down", cmd)
	}
}
