package install

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/serin-dev/serin/admission"
	"github.com/serin-dev/serin/admission/certs"
	"github.com/serin-dev/serin/api/v1alpha1"
	"github.com/serin-dev/serin/integration/cluster"
)

// countingServer counts the requests of each webhook path and closes every
// connection after its response, so that each admission request makes the
// API server open a new TLS connection and verify the certificate served
// at that moment.
type countingServer struct {
	webhook.Server
	calls map[string]*atomic.Int64
}

func (s countingServer) Register(path string, h http.Handler) {
	n := new(atomic.Int64)
	s.calls[path] = n
	s.Server.Register(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Connection", "close")
		h.ServeHTTP(w, r)
	}))
}

// handshakes records the certificate served at each TLS handshake.
type handshakes struct {
	mu      sync.Mutex
	total   int
	byCert  map[string]int
	issuers map[string]bool
	order   []string
}

func (h *handshakes) record(c *x509.Certificate) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fp := certs.Fingerprint(c)
	if h.byCert[fp] == 0 {
		h.order = append(h.order, fp)
	}
	h.total++
	h.byCert[fp]++
	h.issuers[c.Issuer.CommonName] = true
}

func (h *handshakes) counts() (total, certs, issuers int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total, len(h.byCert), len(h.issuers)
}

// TestURLModeRotation installs the chart for real in URL mode (serin as a
// local process on 127.0.0.1) with failurePolicy Fail, runs serin's webhook
// server with two certificate Rotators (two replicas sharing the Secret)
// and short lifetimes, and patches an opted-in Deployment ten times a
// second through the API server until the serving certificate has been
// renewed twice and the CA rotated and retired. Every request must be
// admitted by serin: no error, and the hold applied each time.
func TestURLModeRotation(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ctx, cancel := context.WithCancel(t.Context())
	serinNS, userNS := c.Namespace(t), c.Namespace(t)
	const name = "serin-rot"
	ports, err := cluster.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	port := ports[0]
	url := fmt.Sprintf("https://127.0.0.1:%d", port)

	apply(ctx, t, c, helmTemplate(t, serinNS, true, "fullnameOverride="+name, "controller.enabled=false",
		"webhook.url="+url, "webhook.failurePolicy=Fail"), false)
	t.Cleanup(func() {
		// A configuration that fails closed must not outlive its server.
		_, _ = c.Kubectl(context.Background(), "", "delete", "mutatingwebhookconfiguration,validatingwebhookconfiguration", name, "--ignore-not-found")
	})
	if _, err := c.Kubectl(ctx, "", "wait", "--for=condition=Established", "--timeout=60s", "crd/canaries.serin.dev"); err != nil {
		t.Fatal(err)
	}
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}

	// Two replicas: both rotate, one serves.
	opts := certs.Options{
		Namespace: serinNS, SecretName: name + "-webhook-tls", ServiceName: name + "-webhook", WebhookConfigName: name,
		IPs:        []net.IP{net.ParseIP("127.0.0.1")},
		CALifetime: 60 * time.Second, CARenewBefore: 30 * time.Second,
		ServingLifetime: 30 * time.Second, ServingRenewBefore: 10 * time.Second,
		PropagationDelay: 2 * time.Second,
	}
	var rotators []*certs.Rotator
	var wg sync.WaitGroup
	for i := range 2 {
		o := opts
		o.Log = testr.NewWithOptions(t, testr.Options{LogTimestamp: true}).WithValues("replica", i)
		r, err := certs.New(cs, o)
		if err != nil {
			t.Fatal(err)
		}
		rotators = append(rotators, r)
	}
	seen := &handshakes{byCert: map[string]int{}, issuers: map[string]bool{}}
	srv := countingServer{Server: webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: port, TLSOpts: []func(*tls.Config){
		func(cfg *tls.Config) {
			cfg.NextProtos = []string{"http/1.1"} // so that Connection: close closes
			cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				cert, err := rotators[0].GetCertificate(hello)
				if err == nil {
					seen.record(cert.Leaf)
				}
				return cert, err
			}
		},
	}}), calls: map[string]*atomic.Int64{}}
	admission.Register(srv, nil, testr.New(t))
	runnables := []interface{ Start(context.Context) error }{srv, rotators[0], rotators[1]}
	for _, r := range runnables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Start(ctx); err != nil {
				t.Errorf("%T: %v", r, err)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	deployments := cs.AppsV1().Deployments(userNS)
	// Until the first CA reaches the API server, requests fail: that is the
	// install, not a rotation. Wait for the first admitted request.
	held := deployment("held", map[string]string{v1alpha1.AnnotationCanary: "enabled"})
	start := time.Now()
	for {
		_, err := deployments.Create(ctx, held, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no admission after 30s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("first request admitted %s after start", time.Since(start).Round(time.Millisecond))

	t.Run("selection", func(t *testing.T) {
		hold, validate := srv.calls[admission.PathHoldDeployment], srv.calls[admission.PathValidateDeployment]
		for _, tc := range []struct {
			ns, name            string
			annotations         map[string]string
			wantHold, wantCheck bool
		}{
			{userNS, "plain", nil, false, false},
			{userNS, "other-annotations", map[string]string{"example.com/x": "y"}, false, false},
			{userNS, "disabled", map[string]string{v1alpha1.AnnotationCanary: "disabled"}, false, true},
			{userNS, "enabled", map[string]string{v1alpha1.AnnotationCanary: "enabled"}, true, true},
			{serinNS, "in-serin-namespace", map[string]string{v1alpha1.AnnotationCanary: "enabled"}, false, false},
		} {
			h0, v0 := hold.Load(), validate.Load()
			if _, err := cs.AppsV1().Deployments(tc.ns).Create(ctx, deployment(tc.name, tc.annotations), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got := hold.Load() > h0; got != tc.wantHold {
				t.Errorf("%s: mutating webhook called %v, want %v", tc.name, got, tc.wantHold)
			}
			if got := validate.Load() > v0; got != tc.wantCheck {
				t.Errorf("%s: validating webhook called %v, want %v", tc.name, got, tc.wantCheck)
			}
		}
		// serin's own kinds are checked (failurePolicy Fail); the CRD's
		// schema allows any kind, so the denial is the webhook's.
		canary := srv.calls[admission.PathValidateCanary]
		c0 := canary.Load()
		bad := `{"apiVersion":"serin.dev/v1alpha1","kind":"Canary","metadata":{"name":"bad"},"spec":{"targetRef":{"name":"x","kind":"StatefulSet"}}}`
		_, err := c.Kubectl(ctx, bad, "apply", "-n", userNS, "--dry-run=server", "-f", "-")
		if err == nil || !strings.Contains(err.Error(), `The Canary "bad" is invalid: spec.targetRef.kind`) || canary.Load() == c0 {
			t.Errorf("invalid Canary: webhook called %v: %v", canary.Load() > c0, err)
		}
	})

	// The steady stream: each patch changes the pod template, so admission
	// must hold it (paused, candidate = the new template's hash).
	var (
		requests, failures, notHeld int
		firstErrs                   []string
		retiredAt                   time.Time
		events                      []string
		lastBundle                  string
	)
	deadline := time.Now().Add(100 * time.Second)
	loopStart := time.Now()
	for i := 0; ; i++ {
		patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"example.com/rev":"%d"}}}}}`, i)
		d, err := deployments.Patch(ctx, "held", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		requests++
		switch {
		case err != nil:
			failures++
			if len(firstErrs) < 5 {
				firstErrs = append(firstErrs, fmt.Sprintf("%s: %v", time.Since(loopStart).Round(time.Millisecond), err))
			}
		case !d.Spec.Paused || d.Annotations[v1alpha1.AnnotationCandidateRevision] != v1alpha1.TemplateHash(&d.Spec.Template):
			notHeld++
		}
		if i%5 == 0 {
			// Follow the rotation through the bundle the API server uses.
			mwc, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			bundle := mwc.Webhooks[0].ClientConfig.CABundle
			n := strings.Count(string(bundle), "BEGIN CERTIFICATE")
			if desc := fmt.Sprintf("%x", sha256.Sum256(bundle)); desc != lastBundle {
				lastBundle = desc
				_, nc, ni := seen.counts()
				events = append(events, fmt.Sprintf("%s: caBundle has %d CA(s); %d serving certs from %d CAs served so far",
					time.Since(loopStart).Round(100*time.Millisecond), n, nc, ni))
			}
			if _, nc, ni := seen.counts(); retiredAt.IsZero() && n == 1 && ni >= 2 && nc >= 3 {
				retiredAt = time.Now()
			}
		}
		// Done when two serving renewals and a CA rotation are over and
		// requests have run against the final state for a while.
		if !retiredAt.IsZero() && time.Since(retiredAt) > 3*time.Second {
			break
		}
		if time.Now().After(deadline) {
			total, nc, ni := seen.counts()
			t.Fatalf("rotation incomplete after %s: %d handshakes, %d serving certificates, %d CAs\n%s",
				time.Since(loopStart), total, nc, ni, strings.Join(events, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}

	total, nc, ni := seen.counts()
	seen.mu.Lock()
	perCert := make([]string, 0, len(seen.order))
	for _, fp := range seen.order {
		perCert = append(perCert, fmt.Sprintf("%s:%d", fp, seen.byCert[fp]))
	}
	seen.mu.Unlock()
	t.Logf("%d requests in %s; %d admission calls (hold %d); %d TLS handshakes over %d serving certificates from %d CAs [%s]\n%s",
		requests, time.Since(loopStart).Round(time.Millisecond), srv.calls[admission.PathHoldDeployment].Load()+srv.calls[admission.PathValidateDeployment].Load(),
		srv.calls[admission.PathHoldDeployment].Load(), total, nc, ni, strings.Join(perCert, " "), strings.Join(events, "\n"))
	if failures > 0 {
		t.Errorf("%d of %d requests failed, first: %s", failures, requests, strings.Join(firstErrs, "; "))
	}
	if notHeld > 0 {
		t.Errorf("%d of %d updates were not held by the webhook", notHeld, requests)
	}
	if nc < 3 || ni < 2 {
		t.Errorf("served %d serving certificates from %d CAs, want at least 3 from 2", nc, ni)
	}
	// Two replicas rotating together must not each issue their own: about
	// 40s of 30s certificates renewed at 20s is three or four.
	if nc > 5 {
		t.Errorf("%d serving certificates in %s: the replicas fight", nc, time.Since(loopStart))
	}
	if got := srv.calls[admission.PathHoldDeployment].Load(); got < int64(requests) {
		t.Errorf("hold webhook called %d times for %d requests", got, requests)
	}
}

func deployment(name string, annotations map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
			},
		},
	}
}
