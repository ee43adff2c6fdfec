package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
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
	// PodCIDR is the pod IP range, inside 127.0.0.0/8. Empty picks a free
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
	// BinDir is where the binaries came from.
	BinDir string
	// CACert is the PEM of the cluster CA (it signs the API server's
	// certificate and the admin client certificate).
	CACert []byte
	// StartDuration is how long Start took, from its call until the
	// cluster was ready.
	StartDuration time.Duration

	procs  []*process
	cidrFD *os.File
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
	c := &Cluster{Dir: dir, BinDir: bin, Kubeconfig: filepath.Join(dir, "kubeconfig")}
	defer func() {
		if err != nil {
			c.Stop()
			err = fmt.Errorf("%w (logs in %s)", err, dir)
		}
	}()
	if err := c.lockPodCIDR(opts.PodCIDR); err != nil {
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

	// etcd
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if err := c.start(filepath.Join(bin, "etcd"), "etcd", opts.Detach,
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=4294967296",
	); err != nil {
		return nil, err
	}
	if err := c.waitHTTP(ctx, "etcd", etcdURL+"/health", nil); err != nil {
		return nil, err
	}

	// kube-apiserver
	if err := c.start(filepath.Join(bin, "kube-apiserver"), "kube-apiserver", opts.Detach,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--tls-cert-file="+pki.serverCert, "--tls-private-key-file="+pki.serverKey,
		"--client-ca-file="+pki.caCert,
		"--service-account-key-file="+pki.saPub,
		"--service-account-signing-key-file="+pki.saKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--v=1",
	); err != nil {
		return nil, err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	if err := c.writeKubeconfig(server, pki); err != nil {
		return nil, err
	}
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

	// controller-manager and scheduler
	if err := c.start(filepath.Join(bin, "kube-controller-manager"), "kube-controller-manager", opts.Detach,
		"--kubeconfig="+c.Kubeconfig,
		"--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
		"--leader-elect=false",
		"--service-account-private-key-file="+pki.saKey,
		"--root-ca-file="+pki.caCert,
		"--cluster-signing-cert-file="+pki.caCert, "--cluster-signing-key-file="+pki.caKey,
		"--controllers=*,-node-ipam-controller,-service-lb-controller,-cloud-node-lifecycle-controller,-node-route-controller,-persistentvolume-binder-controller,-persistentvolume-attach-detach-controller,-persistentvolume-expander-controller,-persistentvolume-protection-controller,-persistentvolumeclaim-protection-controller,-ephemeral-volume-controller,-endpoints-controller,-endpointslice-controller,-endpointslice-mirroring-controller,-resourceclaim-controller,-device-taint-eviction-controller",
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
		"--kube-api-qps=200", "--kube-api-burst=400",
		"--v=1",
	); err != nil {
		return nil, err
	}
	if err := c.start(filepath.Join(bin, "kube-scheduler"), "kube-scheduler", opts.Detach,
		"--kubeconfig="+c.Kubeconfig,
		"--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--leader-elect=false", "--kube-api-qps=200", "--kube-api-burst=400",
		"--v=1",
	); err != nil {
		return nil, err
	}

	// kwok, with the stages that make nodes Ready and pods Running.
	stages, err := filepath.Glob(filepath.Join(bin, "kwok-stages", "*.yaml"))
	if err != nil || len(stages) == 0 {
		return nil, fmt.Errorf("no kwok stages in %s (run make tools)", filepath.Join(bin, "kwok-stages"))
	}
	kwokArgs := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--cidr=" + c.PodCIDR,
		"--node-ip=127.0.0.1",
		"--node-lease-duration-seconds=40",
		"--server-address=127.0.0.1:0",
	}
	for _, s := range stages {
		kwokArgs = append(kwokArgs, "--config="+s)
	}
	// kwok inherits the lock on the pod range and holds it while it runs.
	kwok, err := startProcess(c.Dir, "kwok", filepath.Join(bin, "kwok"), kwokArgs, opts.Detach, c.cidrFD)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, kwok)
	if err := c.createNodes(ctx, cs, opts.Nodes); err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, "service account default/default", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return nil, err
	}
	if err := c.waitHTTP(ctx, "kube-scheduler", fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort), &tls.Config{InsecureSkipVerify: true}); err != nil { //nolint:gosec // local health probe
		return nil, err
	}
	if err := c.waitFor(ctx, "kwok nodes Ready", func(ctx context.Context) (bool, error) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=kwok"})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == opts.Nodes, nil
	}); err != nil {
		return nil, err
	}
	c.StartDuration = time.Since(began)
	return c, nil
}

// Stop ends every process. The directory stays; Remove deletes it.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(10 * time.Second)
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
	// stopPIDFiles stops in reverse order: the extra processes first.
	if err := stopPIDFiles(ctx, dir, append(slices.Clone(components), extra...)); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// MemoryRSS is the resident memory of each component, by name.
func (c *Cluster) MemoryRSS() map[string]int64 {
	out := map[string]int64{}
	for _, p := range c.procs {
		if n, err := rssBytes(p.cmd.Process.Pid); err == nil {
			out[p.name] = n
		}
	}
	return out
}

// Clientset is a typed client with admin rights.
func (c *Cluster) Clientset() (*kubernetes.Clientset, error) {
	return kubernetes.NewForConfig(c.Config)
}

func (c *Cluster) start(bin, name string, detach bool, args ...string) error {
	p, err := startProcess(c.Dir, name, bin, args, detach)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	return nil
}

// checkAlive fails when a component has exited: waiting on would only time out.
func (c *Cluster) checkAlive() error {
	for _, p := range c.procs {
		if ok, err := p.exited(); ok {
			return fmt.Errorf("%s exited (%v); last log lines:\n%s", p.name, err, Tail(filepath.Join(c.Dir, p.name+".log"), 15))
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
	server, err := ca.issue("kube-apiserver", nil, []string{"127.0.0.1", "localhost", "10.96.0.1",
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
		if err != nil || !ip.IsLoopback() {
			return fmt.Errorf("pod CIDR %q must be inside 127.0.0.0/8", cidr)
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

// FreePorts reserves n free loopback ports and releases them for use.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// binDir finds the directory with the cluster binaries.
func binDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("SERIN_BIN_DIR")
	}
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("%s missing in %s: run `make tools`", b, dir)
		}
	}
	return filepath.Abs(dir)
}

// RepoRoot is the nearest directory above the working directory whose
// go.mod declares serin's module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/serin-dev/serin\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("serin's repository root not found above the working directory")
		}
		dir = parent
	}
}

// Tail is the last n lines of a file ("" when it cannot be read).
func Tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
