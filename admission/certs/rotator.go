package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

// Defaults of Options, matching serin's flags.
const (
	DefaultSecretName        = "serin-webhook-tls"
	DefaultServiceName       = "serin-webhook"
	DefaultWebhookConfigName = "serin"
)

const (
	fieldManager = "serin-certs"
	// resync bounds the time between two decisions, so a clock jump or a
	// missed event cannot leave a certificate to expire.
	resync     = 10 * time.Minute
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// Options configure a Rotator. Only Namespace is required; zero values
// take the defaults above and in plan.go.
type Options struct {
	// Namespace holds the Secret and the webhook Service (serin's own).
	Namespace string
	// SecretName is the Secret that holds the certificates.
	SecretName string
	// ServiceName is the webhook Service; the serving certificate is valid
	// for its DNS names.
	ServiceName string
	// ExtraServices are more Services in Namespace served with the same
	// certificate (the xDS Service); it is valid for their DNS names too.
	ExtraServices []string
	// WebhookConfigName names the MutatingWebhookConfiguration and the
	// ValidatingWebhookConfiguration whose caBundles are kept current.
	WebhookConfigName string
	// IPs are extra IP addresses for the serving certificate, for
	// webhook configurations that call serin by URL (127.0.0.1 locally).
	IPs []net.IP

	CALifetime         time.Duration
	CARenewBefore      time.Duration
	ServingLifetime    time.Duration
	ServingRenewBefore time.Duration
	PropagationDelay   time.Duration

	// Metrics record the Rotator's writes and the certificates' expiry
	// (nil: not recorded).
	Metrics *Metrics
	// Clock defaults to the real clock.
	Clock clock.WithTicker
	// Log defaults to discarding.
	Log logr.Logger
}

// Rotator keeps the webhook certificates; see the package documentation.
// It is a controller-runtime Runnable that runs on every replica.
type Rotator struct {
	client  kubernetes.Interface
	opts    Options
	policy  Policy
	clock   clock.WithTicker
	log     logr.Logger
	metrics *Metrics

	cert atomic.Pointer[tls.Certificate]
	cas  atomic.Pointer[x509.CertPool]
	// caPEM is the Secret's CA bundle as PEM, for consumers that hand it
	// to proxies; caChanged is poked when it changes.
	caPEM     atomic.Pointer[[]byte]
	caChanged chan struct{}
	wake      chan struct{}

	secret, mutating, validating cache.SharedIndexInformer

	// What this replica has seen, owned by Start's goroutine.
	trustedCA, servedCert     []byte
	trustedSince, servedSince time.Time
}

// New makes a Rotator; start it with Start (or add it to a manager) and
// give the webhook server its ConfigureTLS.
func New(client kubernetes.Interface, opts Options) (*Rotator, error) {
	if opts.Namespace == "" {
		return nil, errors.New("certs: a namespace is required")
	}
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&opts.SecretName, DefaultSecretName)
	def(&opts.ServiceName, DefaultServiceName)
	def(&opts.WebhookConfigName, DefaultWebhookConfigName)
	dur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	dur(&opts.CALifetime, DefaultCALifetime)
	dur(&opts.CARenewBefore, opts.CALifetime/3)
	dur(&opts.ServingLifetime, DefaultServingLifetime)
	dur(&opts.ServingRenewBefore, opts.ServingLifetime/3)
	dur(&opts.PropagationDelay, DefaultPropagationDelay)
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	p := Policy{
		CALifetime: opts.CALifetime, CARenewBefore: opts.CARenewBefore,
		ServingLifetime: opts.ServingLifetime, ServingRenewBefore: opts.ServingRenewBefore,
		PropagationDelay: opts.PropagationDelay,
		DNSNames:         ServiceNames(opts.ServiceName, opts.Namespace),
		IPs:              opts.IPs,
	}
	for _, svc := range opts.ExtraServices {
		p.DNSNames = append(p.DNSNames, ServiceNames(svc, opts.Namespace)...)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	r := &Rotator{client: client, opts: opts, policy: p, clock: opts.Clock, log: opts.Log, metrics: opts.Metrics,
		wake: make(chan struct{}, 1), caChanged: make(chan struct{}, 1)}
	r.secret = oneObjectInformer(client, &corev1.Secret{}, opts.SecretName,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.CoreV1().Secrets(opts.Namespace).List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return client.CoreV1().Secrets(opts.Namespace).Watch(ctx, o)
		})
	r.mutating = oneObjectInformer(client, &admissionregistrationv1.MutatingWebhookConfiguration{}, opts.WebhookConfigName,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return client.AdmissionregistrationV1().MutatingWebhookConfigurations().Watch(ctx, o)
		})
	r.validating = oneObjectInformer(client, &admissionregistrationv1.ValidatingWebhookConfiguration{}, opts.WebhookConfigName,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Watch(ctx, o)
		})
	return r, nil
}

// oneObjectInformer watches the single object called name, so that RBAC
// can grant list and watch on that name alone (resourceNames).
func oneObjectInformer(client any, obj runtime.Object, name string,
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
) cache.SharedIndexInformer {
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return watchFn(ctx, o)
		},
	}
	// Tell the reflector whether the client can stream lists, as
	// client-go's generated informers do (fake clients cannot).
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, client), obj, 0, cache.Indexers{})
}

// Policy is the effective policy, after defaults.
func (r *Rotator) Policy() Policy { return r.policy }

// NeedLeaderElection is false: every replica serves webhooks and so needs
// the certificate.
func (r *Rotator) NeedLeaderElection() bool { return false }

// GetCertificate returns the current serving certificate, for
// tls.Config.GetCertificate.
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := r.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no webhook serving certificate yet")
}

// TrustedCAs are the CAs of the Secret (the signing one and those still
// trusted), for verifying client certificates serin issued; nil before the
// Secret is loaded. The pool must not be modified.
func (r *Rotator) TrustedCAs() *x509.CertPool { return r.cas.Load() }

// CABundle is the Secret's CA bundle (PEM): the signing CA and those still
// trusted during a rotation, the bundle a client verifying serin's serving
// certificate needs; nil before the Secret is loaded. It must not be
// modified.
func (r *Rotator) CABundle() []byte {
	if b := r.caPEM.Load(); b != nil {
		return *b
	}
	return nil
}

// CAChanges receives a value after CABundle changes (coalesced: one
// pending value at most). It has one consumer.
func (r *Rotator) CAChanges() <-chan struct{} { return r.caChanged }

// ConfigureTLS makes a TLS config serve the Rotator's certificate; pass it
// in webhook.Options.TLSOpts.
func (r *Rotator) ConfigureTLS(c *tls.Config) { c.GetCertificate = r.GetCertificate }

// Ready fails until there is a certificate to serve; it is a
// controller-runtime healthz.Checker.
func (r *Rotator) Ready(*http.Request) error {
	if r.cert.Load() == nil {
		return errors.New("no webhook serving certificate yet")
	}
	return nil
}

// Start watches the Secret and the webhook configurations and keeps them
// current until ctx ends.
func (r *Rotator) Start(ctx context.Context) error {
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.poke() },
		UpdateFunc: func(any, any) { r.poke() },
		DeleteFunc: func(any) { r.poke() },
	}
	// The Secret handler loads the certificate itself, so a new one is
	// served as soon as it arrives, whatever the loop is doing.
	secretHandler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.load(obj); r.poke() },
		UpdateFunc: func(_, obj any) { r.load(obj); r.poke() },
		DeleteFunc: func(any) { r.poke() },
	}
	for _, w := range []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{{r.secret, secretHandler}, {r.mutating, handler}, {r.validating, handler}} {
		if _, err := w.inf.AddEventHandler(w.h); err != nil {
			return fmt.Errorf("certs: add event handler: %w", err)
		}
		go w.inf.RunWithContext(ctx)
	}
	if !cache.WaitForCacheSync(ctx.Done(), r.secret.HasSynced, r.mutating.HasSynced, r.validating.HasSynced) {
		return ctx.Err()
	}
	r.log.Info("webhook certificate rotator started", "namespace", r.opts.Namespace, "secret", r.opts.SecretName,
		"webhookConfiguration", r.opts.WebhookConfigName, "dnsNames", r.policy.DNSNames, "ips", r.policy.IPs)

	backoff := minBackoff
	timer := r.clock.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-timer.C():
		}
		next, err := r.reconcile(ctx)
		wait := resync
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			r.log.Error(err, "webhook certificates not reconciled", "retryIn", backoff)
			wait, backoff = backoff, min(2*backoff, maxBackoff)
		case !next.IsZero():
			backoff = minBackoff
			wait = min(max(next.Sub(r.clock.Now()), 0), resync)
		default:
			backoff = minBackoff
		}
		timer.Stop()
		timer = r.clock.NewTimer(wait)
	}
}

func (r *Rotator) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// load serves the Secret's certificate, if it has a usable one.
func (r *Rotator) load(obj any) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	b := ParseSecretData(s.Data)
	if len(b.CAs) > 0 {
		pool := x509.NewCertPool()
		for _, ca := range b.CAs {
			pool.AddCert(ca)
		}
		r.cas.Store(pool)
		r.storeCABundle(EncodeCerts(b.CAs...))
	}
	c := b.TLSCertificate()
	if c == nil {
		return
	}
	if old := r.cert.Load(); old != nil && bytes.Equal(old.Certificate[0], c.Certificate[0]) {
		return
	}
	r.cert.Store(c)
	r.metrics.setExpiry("serving", c.Leaf)
	r.log.Info("webhook serving certificate loaded", "certificate", describe(c.Leaf))
}

// storeCABundle keeps the PEM bundle and signals a change.
func (r *Rotator) storeCABundle(pem []byte) {
	if old := r.caPEM.Load(); old != nil && bytes.Equal(*old, pem) {
		return
	}
	r.caPEM.Store(&pem)
	select {
	case r.caChanged <- struct{}{}:
	default:
	}
}

// currentSecret is the Secret from the informer's store, or nil.
func (r *Rotator) currentSecret() *corev1.Secret {
	obj, ok, _ := r.secret.GetStore().GetByKey(r.opts.Namespace + "/" + r.opts.SecretName)
	if !ok {
		return nil
	}
	s, _ := obj.(*corev1.Secret)
	return s
}

// reconcile makes one decision and carries it out. It returns when to
// decide again (zero: on the next event).
func (r *Rotator) reconcile(ctx context.Context) (time.Time, error) {
	now := r.clock.Now()
	secret := r.currentSecret()
	var data map[string][]byte
	if secret != nil {
		data = secret.Data
	}
	b := ParseSecretData(data)

	if c := r.cert.Load(); c != nil && !bytes.Equal(c.Certificate[0], r.servedCert) {
		r.servedCert, r.servedSince = c.Certificate[0], now
	}
	if len(b.CAs) > 0 {
		r.metrics.setExpiry("ca", b.CAs[0])
		configs := r.webhookConfigs()
		if err := r.inject(ctx, configs, data[KeyCABundle]); err != nil {
			return time.Time{}, err
		}
		r.observeTrust(now, b.CAs[0], configs)
	}

	d := Decide(now, r.policy, Observed{Bundle: b, TrustedSince: r.trustedSince, ServedSince: r.servedSince})
	if d.Action == Wait {
		r.log.V(1).Info("webhook certificates checked", "reason", d.Reason, "next", d.Next)
		return d.Next, nil
	}
	nb, _, err := Apply(now, r.policy, b, d.Action)
	if err != nil {
		return time.Time{}, err
	}
	newData, err := nb.SecretData()
	if err != nil {
		return time.Time{}, err
	}
	if err := r.write(ctx, secret, newData); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			// Another replica wrote first; its Secret comes as an event.
			r.log.V(1).Info("webhook certificates written by another replica", "action", d.Action)
			return now.Add(time.Second), nil
		}
		return time.Time{}, err
	}
	r.metrics.wrote(d.Action)
	r.log.Info("webhook certificates updated", "action", d.Action, "reason", d.Reason,
		"ca", describe(nb.CAs[0]), "trustedCAs", len(nb.CAs), "serving", describe(nb.Cert))
	return time.Time{}, nil
}

// observeTrust notes since when every webhook has trusted ca. Only what
// the informers have seen counts, so a patch just sent does not.
func (r *Rotator) observeTrust(now time.Time, ca *x509.Certificate, configs []webhookConfig) {
	trusted := true
	for _, c := range configs {
		trusted = trusted && trustsAll(c.hooks, func(b []byte) bool { return Trusts(b, ca) })
	}
	switch {
	case !trusted:
		r.trustedCA, r.trustedSince = nil, time.Time{}
	case !bytes.Equal(r.trustedCA, ca.Raw):
		r.trustedCA, r.trustedSince = ca.Raw, now
	}
}

// write creates or updates the Secret; an update carries the
// resourceVersion it was decided on, so concurrent writers conflict.
func (r *Rotator) write(ctx context.Context, current *corev1.Secret, data map[string][]byte) error {
	secrets := r.client.CoreV1().Secrets(r.opts.Namespace)
	if current == nil {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: r.opts.SecretName, Namespace: r.opts.Namespace,
				Labels: map[string]string{"app.kubernetes.io/name": "serin", "app.kubernetes.io/component": "webhook"}},
			Type: corev1.SecretTypeOpaque,
			Data: data,
		}
		_, err := secrets.Create(ctx, s, metav1.CreateOptions{FieldManager: fieldManager})
		return err
	}
	s := current.DeepCopy()
	s.Data = data
	_, err := secrets.Update(ctx, s, metav1.UpdateOptions{FieldManager: fieldManager})
	return err
}
