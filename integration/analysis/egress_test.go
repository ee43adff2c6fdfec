package analysis

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// testEgressHooks: a tenant's hooks cannot reach cloud metadata or the API
// server from serin's network position (loopback is allowed here, as the
// harness's admin allows it, but not the API server's port). The release
// fails on the refusal, and status and events say so by class, without a
// status code.
func (e *env) testEgressHooks(t *testing.T) {
	for _, tc := range []struct{ name, url string }{
		{"metadata", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"},
		{"apiserver", strings.TrimSuffix(e.c.Config.Host, "/") + "/version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e.hookRefused(t, tc.name, tc.url)
		})
	}
}

func (e *env) hookRefused(t *testing.T, hook, url string) {
	a := e.newApp(t, fmt.Sprintf(`
progressDeadlineSeconds: 60
analysis:
  interval: 1s
  threshold: 2
  stepWeight: 25
  maxWeight: 50
  webhooks:
  - {name: %s, type: rollout, url: %q, timeout: 3s}
`, hook, url))
	w := a.watch()
	start := time.Now()
	a.deploy("2.0.0", nil)
	st := a.waitPhase(v1alpha1.PhaseFailed, 90*time.Second)
	const refused = "refused: address not allowed"
	// The Failed status keeps the verdict that failed the release.
	said := strings.Contains(st.LastVerdict, "rollout hook failed "+hook+": "+refused)
	for _, s := range w.since(start) {
		said = said || strings.Contains(s.status.LastVerdict, "rollout hook failed "+hook+": "+refused)
	}
	if !said {
		t.Errorf("no status said the hook was refused; last verdict %q, message %q", st.LastVerdict, st.Message)
	}
	if !a.hasEvent("advancement: rollout hook failed " + hook + ": " + refused) {
		t.Errorf("no event said the hook was refused:\n%s", strings.Join(a.events(), "\n"))
	}
}

// recorder is a Prometheus look-alike that answers every query with 1 and
// records the Authorization header of every request.
type recorder struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auths = append(r.auths, req.Header.Get("Authorization"))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"scalar","result":[%d,"1"]}}`, time.Now().Unix())
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auths...)
}

// testSecretBinding: a MetricTemplate's Secret credentials go only to an
// address the Secret names, and only from the Secret's namespace. A
// template with an unbound Secret, one bound elsewhere and one that names
// another namespace's Secret are refused with errors naming template and
// Secret; the server they point at never sees their tokens. A template
// whose Secret names that server works (so the server was reachable).
func (e *env) testSecretBinding(t *testing.T) {
	rec := newRecorder(t)
	other := e.c.Namespace(t)
	a := &app{e: e, t: t, ns: e.c.Namespace(t), replicas: 2}
	e.serin.AllowSecrets(t, a.ns) // the credentials are in Secrets
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.c.Kubectl(ctx, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: team-b-token, annotations: {serin.dev/allowed-addresses: %q}}
stringData: {token: team-b-s3cret}
`, rec.URL), "apply", "-n", other, "-f", "-"); err != nil {
		t.Fatal(err)
	}
	a.apply(fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: prom-token}
stringData: {token: unbound-s3cret}
---
apiVersion: v1
kind: Secret
metadata: {name: bound-elsewhere, annotations: {serin.dev/allowed-addresses: "https://prometheus.monitoring:9090"}}
stringData: {token: elsewhere-s3cret}
---
apiVersion: v1
kind: Secret
metadata: {name: bound-here, annotations: {serin.dev/allowed-addresses: %[1]q}}
stringData: {token: bound-token}
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: unbound}
spec: {provider: {address: %[1]q, secretRef: {name: prom-token}}, query: "vector(1)"}
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: elsewhere}
spec: {provider: {address: %[1]q, secretRef: {name: bound-elsewhere}}, query: "vector(1)"}
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: bound}
spec: {provider: {address: %[1]q, secretRef: {name: bound-here}}, query: "vector(1)"}
`, rec.URL))
	// secretRef has no namespace field: the API server drops it, and the
	// name is looked up in the template's own namespace.
	if out, err := e.c.Kubectl(ctx, fmt.Sprintf(`apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: cross}
spec: {provider: {address: %q, secretRef: {name: team-b-token, namespace: %s}}, query: "vector(1)"}
`, rec.URL, other), "apply", "--validate=false", "-n", a.ns, "-f", "-"); err != nil {
		t.Logf("the cross-namespace template was refused at apply: %v %s", err, out)
	}
	a.applyCanary(`
progressDeadlineSeconds: 60
analysis:
  interval: 1s
  threshold: 2
  stepWeight: 25
  maxWeight: 50
  metrics:
  - {name: bound, templateRef: {name: bound}, thresholdRange: {min: 0}}
  - {name: unbound, templateRef: {name: unbound}, thresholdRange: {min: 0}}
  - {name: elsewhere, templateRef: {name: elsewhere}, thresholdRange: {min: 0}}
  - {name: cross, templateRef: {name: cross}, thresholdRange: {min: 0}}
`)
	a.deploy("1.0.0", nil)
	w := a.watch()
	a.waitPhase(v1alpha1.PhaseInitialized, time.Minute)
	start := time.Now()
	a.deploy("2.0.0", nil)
	a.waitPhase(v1alpha1.PhaseFailed, 90*time.Second)

	auths := rec.seen()
	if len(auths) == 0 {
		t.Fatal("the bound template never reached the server: the test proves nothing")
	}
	for _, h := range auths {
		if h != "Bearer bound-token" {
			t.Errorf("the server received Authorization %q; only the bound Secret's token may reach it", h)
		}
	}
	want := map[string]string{
		"unbound":   fmt.Sprintf("metric template %s/unbound: provider secret %s/prom-token: the Secret names no address", a.ns, a.ns),
		"elsewhere": fmt.Sprintf("metric template %s/elsewhere: provider secret %s/bound-elsewhere: the Secret does not allow", a.ns, a.ns),
	}
	var texts []string
	for _, s := range w.since(start) {
		texts = append(texts, s.status.LastVerdict, s.status.Message)
	}
	texts = append(texts, a.events()...)
	all := strings.Join(texts, "\n")
	for name, msg := range want {
		if !strings.Contains(all, msg) {
			t.Errorf("%s: no status or event said %q", name, msg)
		}
	}
	for _, secret := range []string{"unbound-s3cret", "elsewhere-s3cret", "team-b-s3cret", "bound-token"} {
		if strings.Contains(all, secret) {
			t.Errorf("a status or event holds the secret %q", secret)
		}
	}
}
