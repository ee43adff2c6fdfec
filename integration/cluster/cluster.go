package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configure a cluster. The zero value is a 3-node cluster in a new
// temporary directory with binaries from the repository's bin/.
type Options struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kubectl, kwok and kwok-stages/. Defaults to
	// $SERIN_BIN_DIR, else bin/ at the repository root.
	BinDir string
	// Dir is where state, certificates and logs go; a new temporary
	// directory when empty.
	Dir string
	// Nodes is the number of kwok nodes (default 3).
	Nodes int
	// PodCIDR is the pod IP range, inside 127.0.0.0/8 but outside
	// 127.240.0.0/12 (where service ranges are). Empty picks a free
	// 127.N.0.0/16.
	PodCIDR string
	// Detach starts the processes in sessions of their own, so they outlive
	// the caller; stop them with StopDir.
	Detach bool
	// Timeout bounds the start (default 2m).
	Timeout time.Duration
}

// Cluster is a running control plane.
type Cluster struct {
	// Dir holds the state, certificates, kubeconfig and logs.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig.
	Kubeconfig string
	// Config is the admin client configuration.
	Config *rest.Config
	// PodCIDR is the range pod IPs come from.
	PodCIDR string
	// ServiceCIDR is the range Service cluster IPs come from: a /20 of
	// 127.240.0.0/12 that belongs to the pod range's /16 (see
	// ServiceCIDRFor), so a test can listen on a cluster IP, and clusters
	// side by side never share one.
	ServiceCIDR string
	// BinDir is where the binaries came from.
	BinDir string
	// CACert is the PEM of the cluster CA (it signs the API server's
	// certificate and the admin client certificate).
	CACert []byte
	// StartDuration is how long Start took, from its call until the
	// cluster was ready.
	StartDuration time.Duration

	procs  []*Process
	cidrFD *os.File
	detach bool
}

// components in start order; StopDir stops them in reverse.
var components = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// Start brings a cluster up and waits until it is ready: the API server
// answers, the controller-manager has created the default service account,
// and the kwok nodes are Ready.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	began := time.Now()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	c, err := newCluster(opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
			err = fmt.Errorf("%w (logs in %s)", err, c.Dir)
		}
	}()
	if err := c.lockPodCIDR(opts.PodCIDR); err != nil {
		return nil, err
	}
	if c.ServiceCIDR, err = ServiceCIDRFor(c.PodCIDR); err != nil {
		return nil, err
	}
	pki, err := c.writePKI()
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(5)
	if err != nil {
		return nil, err
	}
	etcdPort, etcdPeer, apiPort, kcmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	etcdURL, err := c.startEtcd(ctx, etcdPort, etcdPeer)
	if err != nil {
		return nil, err
	}
	cs, err := c.startAPIServer(ctx, etcdURL, apiPort, pki)
	if err != nil {
		return nil, err
	}
	if err := c.startControllerManager(kcmPort, pki); err != nil {
		return nil, err
	}
	if err := c.startScheduler(schedPort); err != nil {
		return nil, err
	}
	if err := c.startKwok(); err != nil {
		return nil, err
	}
	if err := c.createNodes(ctx, cs, opts.Nodes); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, cs, schedPort, opts.Nodes); err != nil {
		return nil, err
	}
	c.StartDuration = time.Since(began)
	return c, nil
}

// newCluster finds the binaries and makes the cluster's directory.
func newCluster(opts Options) (*Cluster, error) {
	bin, err := binDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "serin-cluster-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &Cluster{Dir: dir, BinDir: bin, Kubeconfig: filepath.Join(dir, "kubeconfig"), detach: opts.Detach}, nil
}

// startEtcd runs etcd and waits until it is healthy; it returns the client
// URL.
func (c *Cluster) startEtcd(ctx context.Context, port, peerPort int) (string, error) {
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	if err := c.start("etcd", []string{
		"--name=default", "--data-dir=" + filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		"--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=4294967296",
	}); err != nil {
		return "", err
	}
	if err := c.waitHTTP(ctx, "etcd", etcdURL+"/health", nil); err != nil {
		return "", err
	}
	return etcdURL, nil
}

// startAPIServer runs kube-apiserver, writes the admin kubeconfig and
// waits until the API server is ready; it returns an admin clientset.
func (c *Cluster) startAPIServer(ctx context.Context, etcdURL string, port int, pki *pkiFiles) (*kubernetes.Clientset, error) {
	if err := c.start("kube-apiserver", []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + pki.serverCert, "--tls-private-key-file=" + pki.serverKey,
		"--client-ca-file=" + pki.caCert,
		"--service-account-key-file=" + pki.saPub,
		"--service-account-signing-key-file=" + pki.saKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=" + c.ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--cert-dir=" + filepath.Join(c.Dir, "apiserver-certs"),
		"--v=1",
	}); err != nil {
		return nil, err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	if err := c.writeKubeconfig(server, pki); err != nil {
		return nil, err
	}
	var err error
	c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	c.Config.QPS, c.Config.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, "kube-apiserver /readyz", func(ctx context.Context) (bool, error) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	}); err != nil {
		return nil, err
	}
	return cs, nil
}

// startControllerManager runs kube-controller-manager without the
// controllers a cluster of fake nodes has no use for.
func (c *Cluster) startControllerManager(port int, pki *pkiFiles) error {
	return c.start("kube-controller-manager", []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--authentication-kubeconfig=" + c.Kubeconfig, "--authorization-kubeconfig=" + c.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--leader-elect=false",
		"--service-account-private-key-file=" + pki.saKey,
		"--root-ca-file=" + pki.caCert,
		"--cluster-signing-cert-file=" + pki.caCert, "--cluster-signing-key-file=" + pki.caKey,
		"--controllers=*,-node-ipam-controller,-service-lb-controller,-cloud-node-lifecycle-controller,-node-route-controller,-persistentvolume-binder-controller,-persistentvolume-attach-detach-controller,-persistentvolume-expander-controller,-persistentvolume-protection-controller,-persistentvolumeclaim-protection-controller,-ephemeral-volume-controller,-endpoints-controller,-endpointslice-controller,-endpointslice-mirroring-controller,-resourceclaim-controller,-device-taint-eviction-controller",
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
		"--kube-api-qps=200", "--kube-api-burst=400",
		"--v=1",
	})
}

// startScheduler runs kube-scheduler.
func (c *Cluster) startScheduler(port int) error {
	return c.start("kube-scheduler", []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--authentication-kubeconfig=" + c.Kubeconfig, "--authorization-kubeconfig=" + c.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--leader-elect=false", "--kube-api-qps=200", "--kube-api-burst=400",
		"--v=1",
	})
}

// startKwok runs kwok, with the stages that make nodes Ready and pods
// Running.
func (c *Cluster) startKwok() error {
	stages, err := filepath.Glob(filepath.Join(c.BinDir, "kwok-stages", "*.yaml"))
	if err != nil || len(stages) == 0 {
		return fmt.Errorf("no kwok stages in %s (run make tools)", filepath.Join(c.BinDir, "kwok-stages"))
	}
	args := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--cidr=" + c.PodCIDR,
		"--node-ip=127.0.0.1",
		"--node-lease-duration-seconds=40",
		"--server-address=127.0.0.1:0",
	}
	for _, s := range stages {
		args = append(args, "--config="+s)
	}
	// kwok inherits the lock on the pod range and holds it while it runs.
	return c.start("kwok", args, c.cidrFD)
}

// waitReady waits until the controller-manager has made the default
// service account, the scheduler is healthy and the nodes are Ready.
func (c *Cluster) waitReady(ctx context.Context, cs kubernetes.Interface, schedPort, nodes int) error {
	if err := c.waitFor(ctx, "service account default/default", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "kube-scheduler", fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort), &tls.Config{InsecureSkipVerify: true}); err != nil { //nolint:gosec // local health probe
		return err
	}
	return c.waitFor(ctx, "kwok nodes Ready", func(ctx context.Context) (bool, error) {
		list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=kwok"})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range list.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == nodes, nil
	})
}

// Stop ends every process. The directory stays; Remove deletes it.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].Stop(10 * time.Second)
	}
	c.procs = nil
	if c.cidrFD != nil {
		c.cidrFD.Close()
		c.cidrFD = nil
	}
}

// Remove deletes the cluster's directory.
func (c *Cluster) Remove() error { return os.RemoveAll(c.Dir) }

// StopDir stops a cluster started with Detach from its directory and
// removes the directory. Processes others started beside it and recorded
// in <dir>/<name>.pid (serin, podsim and Prometheus of `make demo`) are
// stopped first.
func StopDir(ctx context.Context, dir string) error {
	pids, err := filepath.Glob(filepath.Join(dir, "*.pid"))
	if err != nil {
		return err
	}
	var extra []string
	for _, p := range pids {
		name := strings.TrimSuffix(filepath.Base(p), ".pid")
		if !slices.Contains(components, name) {
			extra = append(extra, name)
		}
	}
	// In reverse start order: the extra processes first.
	order := append(slices.Clone(components), extra...)
	var errs []error
	for i := len(order) - 1; i >= 0; i-- {
		errs = append(errs, StopPIDFile(ctx, filepath.Join(dir, order[i]+".pid")))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// MemoryRSS is the resident memory of each component, by name.
func (c *Cluster) MemoryRSS() map[string]int64 {
	out := map[string]int64{}
	for _, p := range c.procs {
		if n, err := rssBytes(p.Pid()); err == nil {
			out[p.Name] = n
		}
	}
	return out
}

// Clientset is a typed client with admin rights.
func (c *Cluster) Clientset() (*kubernetes.Clientset, error) {
	return kubernetes.NewForConfig(c.Config)
}

// start runs the component name from BinDir, logging to <Dir>/<name>.log
// with its pid in <Dir>/<name>.pid.
func (c *Cluster) start(name string, args []string, extraFiles ...*os.File) error {
	p, err := StartProcess(name, filepath.Join(c.BinDir, name), args, ProcessOptions{
		Log: filepath.Join(c.Dir, name+".log"), Dir: c.Dir, PIDFile: filepath.Join(c.Dir, name+".pid"),
		Detach: c.detach, ExtraFiles: extraFiles,
	})
	if err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	return nil
}

// checkAlive fails when a component has exited: waiting on would only time out.
func (c *Cluster) checkAlive() error {
	for _, p := range c.procs {
		if ok, err := p.Exited(); ok {
			return fmt.Errorf("%s exited (%v); last log lines:\n%s", p.Name, err, Tail(p.LogPath, 15))
		}
	}
	return nil
}

func (c *Cluster) waitFor(ctx context.Context, what string, ready func(context.Context) (bool, error)) error {
	for {
		if err := c.checkAlive(); err != nil {
			return err
		}
		ok, err := ready(ctx)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) waitHTTP(ctx context.Context, what, url string, tlsConfig *tls.Config) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	defer client.CloseIdleConnections()
	return c.waitFor(ctx, what, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

type pkiFiles struct {
	caCert, caKey, serverCert, serverKey, adminCert, adminKey, saKey, saPub string
}

func (c *Cluster) writePKI() (*pkiFiles, error) {
	dir := filepath.Join(c.Dir, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := newCA("serin-test-cluster-ca")
	if err != nil {
		return nil, err
	}
	var f pkiFiles
	if f.caCert, f.caKey, err = ca.write(dir, "ca"); err != nil {
		return nil, err
	}
	c.CACert = ca.certPEM()
	// The kubernetes Service gets the first address of the service range.
	apiServiceIP := netip.MustParsePrefix(c.ServiceCIDR).Addr().Next().String()
	server, err := ca.issue("kube-apiserver", nil, []string{"127.0.0.1", "localhost", apiServiceIP,
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	if err != nil {
		return nil, err
	}
	if f.serverCert, f.serverKey, err = server.write(dir, "apiserver"); err != nil {
		return nil, err
	}
	admin, err := ca.issue("admin", []string{"system:masters"}, nil)
	if err != nil {
		return nil, err
	}
	if f.adminCert, f.adminKey, err = admin.write(dir, "admin"); err != nil {
		return nil, err
	}
	// The service-account token signing key.
	if f.saKey, f.saPub, err = writeSigningKey(dir, "sa"); err != nil {
		return nil, err
	}
	return &f, nil
}

func (c *Cluster) writeKubeconfig(server string, pki *pkiFiles) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["serin"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: pki.caCert}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificate: pki.adminCert, ClientKey: pki.adminKey}
	cfg.Contexts["serin"] = &clientcmdapi.Context{Cluster: "serin", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "serin"
	return clientcmd.WriteToFile(*cfg, c.Kubeconfig)
}

func (c *Cluster) createNodes(ctx context.Context, cs kubernetes.Interface, n int) error {
	for i := range n {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        fmt.Sprintf("kwok-node-%d", i),
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{
					"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
					"kubernetes.io/hostname": fmt.Sprintf("kwok-node-%d", i),
				},
			},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("32"),
					corev1.ResourceMemory: resource.MustParse("256Gi"),
					corev1.ResourcePods:   resource.MustParse("250"),
				},
				Capacity: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("32"),
					corev1.ResourceMemory: resource.MustParse("256Gi"),
					corev1.ResourcePods:   resource.MustParse("250"),
				},
			},
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node: %w", err)
		}
	}
	return nil
}

// lockPodCIDR picks (or checks) the pod range and holds a lock on it for as
// long as kwok runs, so that two clusters on one machine never hand out the
// same loopback pod IPs.
func (c *Cluster) lockPodCIDR(cidr string) error {
	try := func(octet int) (bool, error) {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("serin-podcidr-127.%d.lock", octet)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return false, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			return false, nil
		}
		c.cidrFD = f
		c.PodCIDR = fmt.Sprintf("127.%d.0.0/16", octet)
		return true, nil
	}
	if cidr != "" {
		ip, ipnet, err := net.ParseCIDR(cidr)
		if err != nil || !ip.IsLoopback() || serviceRanges.Contains(netip.MustParseAddr(ip.String())) {
			return fmt.Errorf("pod CIDR %q must be inside 127.0.0.0/8 and outside %s", cidr, serviceRanges)
		}
		ok, err := try(int(ipnet.IP.To4()[1]))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("pod CIDR %s is in use by another cluster on this machine", cidr)
		}
		c.PodCIDR = cidr
		return nil
	}
	for _, octet := range rand.Perm(200) {
		ok, err := try(octet + 20)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return errors.New("no free pod CIDR in 127.0.0.0/8")
}

// serviceRanges holds the service ranges of every cluster; pod ranges stay
// out of it.
var serviceRanges = netip.MustParsePrefix("127.240.0.0/12")

// ServiceCIDRFor is the service range of the cluster whose pods get IPs
// from podCIDR: the pod range's second octet N picks the N-th /20 of
// 127.240.0.0/12. Pod ranges are locked per second octet (lockPodCIDR), so
// two clusters on one machine never get the same cluster IPs either, and
// cluster IPs are loopback addresses a test can listen on.
func ServiceCIDRFor(podCIDR string) (string, error) {
	p, err := netip.ParsePrefix(podCIDR)
	if err != nil || !p.Addr().Is4() || !p.Addr().IsLoopback() {
		return "", fmt.Errorf("pod CIDR %q is not an IPv4 range inside 127.0.0.0/8", podCIDR)
	}
	n := int(p.Addr().As4()[1])
	return fmt.Sprintf("127.%d.%d.0/20", 240+n/16, n%16*16), nil
}

// binDir finds the directory with the cluster binaries.
func binDir(dir string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = DefaultBinDir(); err != nil {
			return "", err
		}
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("%s missing in %s: run `make tools`", b, dir)
		}
	}
	return filepath.Abs(dir)
}
