// Command demo is `make demo`: on one machine it brings up the local
// cluster (or reuses the one `make cluster-up` started), installs serin's
// CRDs, RBAC and webhook configuration from the chart, runs `serin
// controller`, podsim and Prometheus as local processes, deploys podinfo
// with `serin.dev/canary: enabled`, sends it traffic through grpc-go's xDS
// client, and then shows a healthy v2 promoted and a v3 with 30% errors
// rolled back, live. Everything is left running in the cluster directory;
// `make cluster-down` stops it all.
//
// `demo traffic` is the background load it leaves behind.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/serin-dev/serin/integration/cluster"
	"github.com/serin-dev/serin/integration/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "traffic" {
		err = trafficMain(ctx, os.Args[2:])
	} else {
		err = demoMain(ctx, os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// trafficMain runs the background load until it is stopped.
func trafficMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("traffic", flag.ContinueOnError)
	xdsAddr := fs.String("xds", "", "serin's xDS address")
	certs := fs.String("xds-certs", "", "directory with the xDS client certificate (tls.crt, tls.key, ca.crt); empty: plaintext")
	target := fs.String("target", "", "service host:port")
	rps := fs.Int("rps", 10, "requests per second")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return runTraffic(ctx, *xdsAddr, harness.XDSCredentials{Dir: *certs}, "demo-background", *target, *rps, nil)
}

// options of the demo.
type options struct {
	dir, bin string
	rps      int
	interval time.Duration
}

func demoMain(ctx context.Context, args []string) error {
	root, err := cluster.RepoRoot()
	if err != nil {
		return err
	}
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&o.dir, "dir", filepath.Join(root, ".cluster"), "cluster directory (shared with make cluster-up/cluster-down)")
	fs.StringVar(&o.bin, "bin", filepath.Join(root, "bin"), "directory with serin, podsim, kubectl, helm, prometheus and the cluster's binaries")
	fs.IntVar(&o.rps, "rps", 20, "requests per second sent to the app")
	fs.DurationVar(&o.interval, "interval", 3*time.Second, "analysis interval of the demo's Canary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return err
	}
	d := &demo{o: o, root: root, start: time.Now(), out: os.Stdout}
	return d.run(ctx)
}

// ensureCluster reuses the cluster in dir when it answers, or starts one
// there, detached.
func (d *demo) ensureCluster(ctx context.Context) error {
	kubeconfig := filepath.Join(d.o.dir, "kubeconfig")
	if _, err := os.Stat(filepath.Join(d.o.dir, "kube-apiserver.pid")); err == nil {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err == nil && apiReady(ctx, cfg) {
			d.say("cluster: reusing the cluster in %s", d.rel(d.o.dir))
			d.kubeconfig, d.cfg = kubeconfig, cfg
			return d.stopPrevious(ctx)
		}
		return fmt.Errorf("a cluster directory %s exists but its API server does not answer: run make cluster-down", d.o.dir)
	}
	d.say("cluster: starting etcd, kube-apiserver, controller-manager, scheduler and kwok (3 nodes) in %s", d.rel(d.o.dir))
	c, err := cluster.Start(ctx, cluster.Options{BinDir: d.o.bin, Dir: d.o.dir, Nodes: 3, PodCIDR: "127.1.0.0/16", Detach: true})
	if err != nil {
		return err
	}
	d.say("cluster: up in %s", c.StartDuration.Round(100*time.Millisecond))
	d.kubeconfig, d.cfg = c.Kubeconfig, c.Config
	return nil
}

func apiReady(ctx context.Context, cfg *rest.Config) bool {
	c := rest.CopyConfig(cfg)
	c.Timeout = 3 * time.Second
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return false
	}
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	return err == nil && string(body) == "ok"
}

// stopPrevious stops the processes an earlier demo left in the directory.
func (d *demo) stopPrevious(ctx context.Context) error {
	var errs []error
	for _, name := range []string{procTraffic, procSerin, procPodsim, procPrometheus} {
		errs = append(errs, stopPIDFile(ctx, d.o.dir, name))
	}
	return errors.Join(errs...)
}

// removePrevious deletes the namespace an earlier demo left; the new serin
// runs by then and releases the Canary's finalizer.
func (d *demo) removePrevious(ctx context.Context) error {
	if _, err := d.kubectl(ctx, "", "get", "namespace", demoNamespace); err != nil {
		return nil
	}
	d.say("cluster: removing the previous demo's namespace")
	if _, err := d.kubectl(ctx, "", "delete", "namespace", demoNamespace, "--wait=false"); err != nil {
		return err
	}
	if !d.namespaceGone(ctx, 90*time.Second) {
		return fmt.Errorf("namespace %s is not going away; run make cluster-down and try again", demoNamespace)
	}
	return nil
}

func (d *demo) namespaceGone(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := d.kubectl(ctx, "", "get", "namespace", demoNamespace); err != nil && strings.Contains(err.Error(), "NotFound") {
			return true
		}
		time.Sleep(500 * time.Millisecond)
	}
	return false
}

// Names of the processes the demo leaves in the cluster directory.
const (
	procSerin      = "serin"
	procPodsim     = "podsim"
	procPrometheus = "prometheus"
	procTraffic    = "demo-traffic"
)
