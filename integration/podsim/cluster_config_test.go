package podsim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/integration/cluster"
)

// appConfigManifest is the ConfigMap and Secret the config test's pods read.
func appConfigManifest(version, color string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  VERSION: %q
  app.conf: |
    color=%s
  unlisted: not mounted
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secret
stringData:
  token: t0k
`, version, color)
}

// configDeployment reads VERSION from a ConfigMap key, the Secret through envFrom
// with a prefix, and mounts one item of the ConfigMap.
const configDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  replicas: 1
  selector:
    matchLabels:
      app: podinfo
  template:
    metadata:
      labels:
        app: podinfo
    spec:
      containers:
      - name: podinfo
        image: ghcr.io/stefanprodan/podinfo:6.0.1
        env:
        - name: VERSION
          valueFrom:
            configMapKeyRef:
              name: app-config
              key: VERSION
        - name: MESSAGE
          value: literal values are not reported
        envFrom:
        - prefix: S_
          secretRef:
            name: app-secret
        - configMapRef:
            name: optional-and-absent
            optional: true
        ports:
        - name: http
          containerPort: 9898
        - name: grpc
          containerPort: 9999
        volumeMounts:
        - name: config
          mountPath: /etc/app
      volumes:
      - name: config
        configMap:
          name: app-config
          items:
          - key: app.conf
            path: app.conf
`

// TestClusterConfig runs a pod reading a ConfigMap and a Secret through env, envFrom
// and a volume, then changes the ConfigMap: the env the pod reports never changes
// (a container's env is fixed at its start) while its files follow the ConfigMap.
func TestClusterConfig(t *testing.T) {
	c := cluster.Get(t)
	ns := c.Namespace(t)
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	sim, _ := runSim(t, cs, Options{Namespaces: []string{ns}, ShutdownTimeout: time.Second})
	e := &e2e{t: t, c: c, ns: ns, cidr: netip.MustParsePrefix(c.PodCIDR)}

	e.kubectl(appConfigManifest("cfg-v1", "blue"), "apply", "--filename=-")
	e.kubectl(configDeployment, "apply", "--filename=-")
	e.rolledOut()
	waitServing(t, sim, "the pod with its ConfigMap version", servedAs(1, "cfg-v1"))
	pod := e.readyPods(1)[0]
	httpAddr, grpcAddr := hostPort(pod.Status.PodIP, 9898), hostPort(pod.Status.PodIP, 9999)

	const wantEnv = "S_token=t0k,VERSION=cfg-v1"
	const oldFiles, newFiles = "/etc/app/app.conf=color=blue", "/etc/app/app.conf=color=green"
	h := e.configHeaders(httpAddr)
	if got := h.Get(HeaderConfigEnv); got != wantEnv {
		t.Errorf("%s = %q, want %q", HeaderConfigEnv, got, wantEnv)
	}
	if got := h.Get(HeaderConfigFiles); got != oldFiles {
		t.Errorf("%s = %q, want %q", HeaderConfigFiles, got, oldFiles)
	}
	header, trailer, err := grpcConfigMD(t.Context(), grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	for _, md := range [][]string{header.Get(HeaderConfigEnv), trailer.Get(HeaderConfigEnv)} {
		if !slices.Equal(md, []string{wantEnv}) {
			t.Errorf("gRPC %s = %q, want %q", HeaderConfigEnv, md, wantEnv)
		}
	}

	// Change the ConfigMap: the files follow within a few refresh periods; the env,
	// and so the version, stays what it was when the pod started.
	e.kubectl(appConfigManifest("cfg-v2", "green"), "apply", "--filename=-")
	for deadline := time.Now().Add(time.Minute); ; {
		h := e.configHeaders(httpAddr)
		if got := h.Get(HeaderConfigEnv); got != wantEnv || h.Get(HeaderVersion) != "cfg-v1" {
			t.Fatalf("after the change %s = %q and %s = %q; the env must not change", HeaderConfigEnv, got, HeaderVersion, h.Get(HeaderVersion))
		}
		got := h.Get(HeaderConfigFiles)
		if got == newFiles {
			break
		}
		if got != oldFiles || time.Now().After(deadline) {
			t.Fatalf("%s = %q, want %q then %q", HeaderConfigFiles, got, oldFiles, newFiles)
		}
		time.Sleep(100 * time.Millisecond)
	}
	header, trailer, err = grpcConfigMD(t.Context(), grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	if got := header.Get(HeaderConfigFiles); !slices.Equal(got, []string{newFiles}) {
		t.Errorf("gRPC %s = %q, want %q", HeaderConfigFiles, got, newFiles)
	}
	if got := trailer.Get(HeaderConfigEnv); !slices.Equal(got, []string{wantEnv}) {
		t.Errorf("gRPC %s = %q, want %q", HeaderConfigEnv, got, wantEnv)
	}

	e.checkRelabelKeepsEnv(pod.Name, httpAddr, wantEnv, newFiles)

	// A deleted ConfigMap leaves the files as they were, as a kubelet keeps a volume
	// it cannot refresh.
	e.kubectl("", "delete", "configmap", "app-config")
	for range 5 {
		time.Sleep(DefaultConfigRefresh)
		if got := e.configHeaders(httpAddr).Get(HeaderConfigFiles); got != newFiles {
			t.Fatalf("after deleting the ConfigMap %s = %q, want %q", HeaderConfigFiles, got, newFiles)
		}
	}
}

// faultyDeployment takes its whole behaviour from ConfigMap "faults" through envFrom.
const faultyDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  replicas: 1
  selector:
    matchLabels:
      app: podinfo
  template:
    metadata:
      labels:
        app: podinfo
    spec:
      containers:
      - name: podinfo
        image: ghcr.io/stefanprodan/podinfo:6.0.1
        envFrom:
        - configMapRef:
            name: faults
        ports:
        - name: http
          containerPort: 9898
        - name: grpc
          containerPort: 9999
`

// TestClusterConfigFaults runs a pod whose ERROR_RATE comes from a ConfigMap that
// does not exist yet: the pod is not served (the kubelet would not start its
// container) until the ConfigMap appears, and then it fails every request.
func TestClusterConfigFaults(t *testing.T) {
	c := cluster.Get(t)
	ns := c.Namespace(t)
	cs, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	sim, _ := runSim(t, cs, Options{Namespaces: []string{ns}, ShutdownTimeout: time.Second})
	e := &e2e{t: t, c: c, ns: ns, cidr: netip.MustParsePrefix(c.PodCIDR)}

	e.kubectl(faultyDeployment, "apply", "--filename=-")
	e.rolledOut()
	pod := e.readyPods(1)[0]
	addr := hostPort(pod.Status.PodIP, 9898)
	assertRefused(t, addr)
	if served := sim.Serving(); len(served) != 0 {
		t.Fatalf("serving %+v without its ConfigMap", served)
	}

	e.kubectl("", "create", "configmap", "faults", "--from-literal=ERROR_RATE=1", "--from-literal=ERROR_HTTP_CODE=503", "--from-literal=VERSION=faulty")
	waitServing(t, sim, "the pod once its ConfigMap exists", servedAs(1, "faulty"))
	for range 5 {
		r := doHTTP(t, http.MethodGet, "http://"+addr+"/", nil, nil)
		if r.code != http.StatusServiceUnavailable {
			t.Errorf("GET / = %d %s, want 503 (ERROR_RATE=1 from the ConfigMap)", r.code, r.body)
		}
		if got, want := r.header.Get(HeaderConfigEnv), "ERROR_HTTP_CODE=503,ERROR_RATE=1,VERSION=faulty"; got != want {
			t.Errorf("%s = %q, want %q", HeaderConfigEnv, got, want)
		}
	}
}

// checkRelabelKeepsEnv changes the pod's version label, which restarts its server
// (the version in its metrics changes) but not its container: the env must stay
// what it was at the pod's start while the files stay current.
func (e *e2e) checkRelabelKeepsEnv(pod, addr, wantEnv, wantFiles string) {
	e.t.Helper()
	e.kubectl("", "label", "pod", pod, "version=relabelled")
	for deadline := time.Now().Add(time.Minute); ; {
		// The server restarts meanwhile: a refused connection is expected.
		_, _ = getBody(e.t.Context(), "http://"+addr+"/")
		metrics, err := getBody(e.t.Context(), "http://"+addr+"/metrics")
		if err == nil && strings.Contains(metrics, `destination_version="relabelled"`) {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the relabelled pod is not served with its new identity (%v): %s", err, metrics)
		}
		time.Sleep(100 * time.Millisecond)
	}
	h := e.configHeaders(addr)
	if got := h.Get(HeaderConfigEnv); got != wantEnv || h.Get(HeaderVersion) != "cfg-v1" {
		e.t.Errorf("after the restart %s = %q and %s = %q, want %q and the version at the pod's start",
			HeaderConfigEnv, got, HeaderVersion, h.Get(HeaderVersion), wantEnv)
	}
	if got := h.Get(HeaderConfigFiles); got != wantFiles {
		e.t.Errorf("after the restart %s = %q, want %q", HeaderConfigFiles, got, wantFiles)
	}
}

// getBody makes a GET on a fresh connection and returns the body of a 200 answer.
func getBody(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := freshConns.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return string(body), err
}

// configHeaders makes a GET / on a fresh connection and returns the response headers.
func (e *e2e) configHeaders(addr string) http.Header {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := freshConns.Do(req)
	if err != nil {
		e.t.Fatalf("GET / on %s: %v", addr, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET / on %s: status %d", addr, resp.StatusCode)
	}
	return resp.Header
}
