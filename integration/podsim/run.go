package podsim

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// DefaultShutdownTimeout is how long a stopped pod's requests in flight may run on.
const DefaultShutdownTimeout = 5 * time.Second

// Options configure a Simulator. The zero value watches all namespaces.
type Options struct {
	// Namespaces to watch; empty means all namespaces.
	Namespaces []string
	// LabelSelector restricts the pods served (Kubernetes label selector syntax).
	LabelSelector string
	// Logger; when unset the logger from Run's context is used.
	Logger logr.Logger
	// ShutdownTimeout bounds how long requests in flight may run after a pod stops
	// being served. Defaults to DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Listen opens listeners; defaults to (*net.ListenConfig).Listen.
	Listen ListenFunc
	// ConfigRefresh is how often the files of a served pod's configMap, secret and
	// projected volumes are read again. Defaults to DefaultConfigRefresh.
	ConfigRefresh time.Duration
}

// Simulator serves every Ready pod with a loopback IP that its informers see.
type Simulator struct {
	client kubernetes.Interface
	read   configReader
	opts   Options
	log    logr.Logger

	// Owned by the single worker goroutine (and by Run once it has ended).
	listers    map[string]corelisters.PodLister
	invalid    map[string]string             // key -> last reason the pod could not be served
	configs    map[string]*podConfig         // key -> config resolved at the pod's start
	refreshers map[string]context.CancelFunc // key -> stops the pod's volume refresh
	refreshing sync.WaitGroup

	mu      sync.Mutex
	ran     bool
	servers map[string]*PodServer // key: namespace/name
	changed chan struct{}         // closed and replaced on every change of servers
	drains  sync.WaitGroup
}

// New returns a Simulator using the given client.
func New(client kubernetes.Interface, opts Options) *Simulator {
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.ConfigRefresh <= 0 {
		opts.ConfigRefresh = DefaultConfigRefresh
	}
	return &Simulator{
		client:     client,
		read:       clientConfigReader(client),
		opts:       opts,
		servers:    map[string]*PodServer{},
		invalid:    map[string]string{},
		configs:    map[string]*podConfig{},
		refreshers: map[string]context.CancelFunc{},
		changed:    make(chan struct{}),
	}
}

// NewForConfig returns a Simulator talking to the API server of cfg.
func NewForConfig(cfg *rest.Config, opts Options) (*Simulator, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create kubernetes client: %w", err)
	}
	return New(client, opts), nil
}

// Run serves pods until ctx ends; see [Simulator.Run].
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	sim, err := NewForConfig(cfg, opts)
	if err != nil {
		return err
	}
	return sim.Run(ctx)
}

// Run watches pods and serves them until ctx ends. On return every listener is closed
// and every goroutine it started has ended. It returns nil when ctx ends, and may be
// called once.
func (s *Simulator) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("podsim: Run called twice")
	}
	s.ran = true
	s.mu.Unlock()

	s.log = s.opts.Logger
	if s.log.GetSink() == nil {
		s.log = logr.FromContextOrDiscard(ctx)
	}
	queue := workqueue.NewTypedRateLimitingQueue(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 10*time.Second))
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}

	namespaces := slices.Clone(s.opts.Namespaces)
	slices.Sort(namespaces)
	namespaces = slices.Compact(namespaces)
	if len(namespaces) == 0 || slices.Contains(namespaces, metav1.NamespaceAll) {
		namespaces = []string{metav1.NamespaceAll}
	}
	s.listers = map[string]corelisters.PodLister{}
	var factories []informers.SharedInformerFactory
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(s.client, 0,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = s.opts.LabelSelector }),
			informers.WithTransform(stripManagedFields))
		pods := f.Core().V1().Pods()
		if _, err := pods.Informer().AddEventHandler(handler); err != nil {
			queue.ShutDown()
			return fmt.Errorf("watch pods in namespace %q: %w", ns, err)
		}
		s.listers[ns] = pods.Lister()
		factories = append(factories, f)
	}
	s.log.Info("watching pods", "namespaces", namespaces, "labelSelector", s.opts.LabelSelector)

	for _, f := range factories {
		f.Start(ctx.Done())
	}
	var worker sync.WaitGroup
	worker.Go(func() {
		for s.processNext(ctx, queue) {
		}
	})

	<-ctx.Done()
	queue.ShutDown()
	worker.Wait()
	s.stopAll()
	for _, f := range factories {
		f.Shutdown()
	}
	s.log.Info("stopped serving pods")
	return nil
}

// Serving lists every address being served, sorted by namespace, pod and port.
func (s *Simulator) Serving() []PodAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.servingLocked()
}

func (s *Simulator) servingLocked() []PodAddr {
	keys := make([]string, 0, len(s.servers))
	for k := range s.servers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []PodAddr
	for _, k := range keys {
		out = append(out, s.servers[k].Addrs()...)
	}
	return out
}

// WaitFor blocks until cond holds for the served addresses or ctx ends. cond is
// evaluated now and after every change.
func (s *Simulator) WaitFor(ctx context.Context, cond func([]PodAddr) bool) error {
	for {
		s.mu.Lock()
		addrs, changed := s.servingLocked(), s.changed
		s.mu.Unlock()
		if cond(addrs) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for served pods: %w", ctx.Err())
		}
	}
}

func (s *Simulator) processNext(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string]) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	if ctx.Err() != nil {
		return true // shutting down: drain the queue without acting
	}
	err := s.sync(ctx, key)
	if errors.Is(err, errConfigPending) {
		// As the kubelet retries a container it could not configure.
		s.noteInvalid(key, err)
		queue.Forget(key)
		queue.AddAfter(key, s.opts.ConfigRefresh)
		return true
	}
	if err != nil {
		s.log.Error(err, "cannot serve pod, retrying", "pod", key, "attempt", queue.NumRequeues(key)+1)
		queue.AddRateLimited(key)
		return true
	}
	queue.Forget(key)
	return true
}

// sync brings the server of one pod in line with the pod: start, restart or stop.
func (s *Simulator) sync(ctx context.Context, key string) error {
	want, cfg, err := s.desired(ctx, key)
	s.mu.Lock()
	cur := s.servers[key]
	s.mu.Unlock()
	if err == nil && cur != nil && want != nil && reflect.DeepEqual(cur.Plan(), *want) {
		return nil
	}
	if cur != nil {
		s.stop(key, cur)
	}
	if err != nil {
		return err
	}
	if want == nil {
		return nil
	}
	srv := newPodServer(*want, ServerOptions{Logger: s.log, Listen: s.opts.Listen})
	srv.SetConfigFiles(cfg.files())
	if err := srv.Start(ctx); err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	s.startRefresh(ctx, key, cfg, srv)
	s.mu.Lock()
	s.servers[key] = srv
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Info("serving pod", "pod", key, "podIP", want.PodIP, "version", want.Behavior.Version,
		"ports", portSummary(want.Ports), "errorRate", want.Behavior.ErrorRate, "latency", want.Behavior.Latency)
	return nil
}

// desired returns the plan the pod should be served with and its configuration, nil
// when it should not be served. A pod whose spec cannot be served is logged once per
// distinct reason; one whose ConfigMaps or Secrets are missing is errConfigPending.
func (s *Simulator) desired(ctx context.Context, key string) (*Plan, *podConfig, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil, nil, nil // not a pod key; nothing to do
	}
	lister, ok := s.listers[ns]
	if !ok {
		lister = s.listers[metav1.NamespaceAll]
	}
	pod, err := lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		delete(s.invalid, key)
		delete(s.configs, key)
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get pod %s from cache: %w", key, err)
	}
	if ok, _ := Servable(pod); !ok {
		return nil, nil, nil
	}
	cfg, err := s.podConfig(ctx, key, pod)
	if err != nil {
		return nil, nil, err
	}
	plan, err := PlanWithEnv(pod, cfg.env)
	if err != nil {
		s.noteInvalid(key, err)
		return nil, nil, nil
	}
	delete(s.invalid, key)
	return &plan, cfg, nil
}

// podConfig returns the pod's configuration, resolved once per pod UID: a
// container's env never changes while it runs.
func (s *Simulator) podConfig(ctx context.Context, key string, pod *corev1.Pod) (*podConfig, error) {
	if cfg, ok := s.configs[key]; ok && cfg.uid == pod.UID {
		return cfg, nil
	}
	delete(s.configs, key)
	cfg, err := resolvePodConfig(ctx, s.read, pod)
	if err != nil {
		return nil, err
	}
	s.configs[key] = cfg
	return cfg, nil
}

// noteInvalid logs why a pod cannot be served, once per distinct reason.
func (s *Simulator) noteInvalid(key string, err error) {
	if s.invalid[key] != err.Error() {
		s.invalid[key] = err.Error()
		s.log.Error(err, "pod cannot be served", "pod", key)
	}
}

// startRefresh keeps the server's config files current while it serves; pods
// without config volumes need no refresh.
func (s *Simulator) startRefresh(ctx context.Context, key string, cfg *podConfig, srv *PodServer) {
	if len(cfg.volRefs) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	s.refreshers[key] = cancel
	log := s.log.WithValues("pod", key)
	s.refreshing.Go(func() { refreshLoop(ctx, log, s.read, s.opts.ConfigRefresh, cfg, srv) })
}

// stop closes the server's listeners now and lets its requests in flight finish in
// the background, bounded by the shutdown timeout.
func (s *Simulator) stop(key string, srv *PodServer) {
	if cancel, ok := s.refreshers[key]; ok {
		cancel()
		delete(s.refreshers, key)
	}
	srv.CloseListeners()
	s.mu.Lock()
	delete(s.servers, key)
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Info("stopped serving pod", "pod", key)
	s.drains.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
		defer cancel()
		srv.Shutdown(ctx)
	})
}

func (s *Simulator) stopAll() {
	s.mu.Lock()
	keys := make([]string, 0, len(s.servers))
	for k := range s.servers {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	slices.Sort(keys)
	for _, k := range keys {
		s.mu.Lock()
		srv := s.servers[k]
		s.mu.Unlock()
		s.stop(k, srv)
	}
	s.refreshing.Wait()
	s.drains.Wait()
}

func (s *Simulator) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func portSummary(ports []PortPlan) []string {
	out := make([]string, 0, len(ports))
	for _, p := range ports {
		out = append(out, fmt.Sprintf("%s/%d/%s", p.Name, p.Port, p.Protocol))
	}
	return out
}

// stripManagedFields drops managed fields from cached pods; podsim never reads them.
func stripManagedFields(obj any) (any, error) {
	if pod, ok := obj.(*corev1.Pod); ok {
		pod.ManagedFields = nil
	}
	return obj, nil
}
