package admission

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// hostCanary is a Canary in ns claiming hosts.
func hostCanary(ns, name string, hosts ...string) string {
	return fmt.Sprintf(`apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: %s, namespace: %s}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: %s}
  service: {port: 9898, hosts: ["%s"]}
`, name, ns, name, strings.Join(hosts, `", "`))
}

// testHostOwnership: a Canary may claim only hosts its namespace owns. The
// owner namespace routes shop.example.com from an Istio Gateway,
// web.example.com from a VirtualService, *.gw.example.com from a Gateway
// API Gateway and api.example.com from an HTTPRoute, and has a Service; another
// namespace's Canary claiming any of them is denied with a message that
// names the field, the host and its owner, until the owner grants it.
// Claiming its own Service's names is admitted.
func (e *env) testHostOwnership(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tenant, owner := e.c.Namespace(t), e.c.Namespace(t)
	objects := fmt.Sprintf(`apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: public, namespace: %[1]s}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["shop.example.com"]}]
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: web, namespace: %[1]s}
spec:
  hosts: ["web.example.com"]
  http: [{route: [{destination: {host: store}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: %[1]s}
spec:
  gatewayClassName: shared
  listeners: [{name: http, port: 80, protocol: HTTP, hostname: "*.gw.example.com"}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: %[1]s}
spec:
  hostnames: ["api.example.com"]
  rules: [{backendRefs: [{name: store, port: 9898}]}]
---
apiVersion: v1
kind: Service
metadata: {name: store, namespace: %[1]s}
spec: {ports: [{port: 9898}], selector: {app: store}}
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: %[2]s}
spec: {ports: [{port: 9898}], selector: {app: app}}
`, owner, tenant)
	if _, err := e.c.Kubectl(ctx, objects, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}

	denied := func(t *testing.T, name string, want []string, hosts ...string) {
		t.Helper()
		_, err := e.c.Kubectl(ctx, hostCanary(tenant, name, hosts...), "apply", "-f", "-")
		if err == nil {
			t.Fatalf("a Canary claiming %v was admitted", hosts)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("message lacks %q:\n%v", w, err)
			}
		}
		if calls := callsOf(e.calls("canaries", tenant, name), byCanary); len(calls) == 0 || calls[len(calls)-1].Result != "denied" {
			t.Errorf("serin's Canary check answered %+v, want denied", calls)
		}
	}
	admitted := func(t *testing.T, name string, hosts ...string) {
		t.Helper()
		if _, err := e.c.Kubectl(ctx, hostCanary(tenant, name, hosts...), "apply", "-f", "-"); err != nil {
			t.Fatalf("a Canary claiming %v: %v", hosts, err)
		}
	}

	denied(t, "gateway-host", []string{
		`spec.service.hosts[0]`,
		fmt.Sprintf(`host "shop.example.com" belongs to namespace %q (Gateway %s/public); ask its owner for a grant`, owner, owner),
	}, "shop.example.com")
	denied(t, "route-host", []string{`spec.service.hosts[1]`, fmt.Sprintf(`host "web.example.com" belongs to namespace %q (VirtualService %s/web)`, owner, owner)},
		"app", "web.example.com")
	denied(t, "service-name", []string{fmt.Sprintf(`host "store.%s.svc.cluster.local" belongs to namespace %q`, owner, owner)},
		"store."+owner+".svc.cluster.local")
	denied(t, "gateway-api-listener", []string{fmt.Sprintf(`host "a.gw.example.com" belongs to namespace %q (Gateway %s/edge)`, owner, owner)},
		"a.gw.example.com")
	denied(t, "httproute", []string{fmt.Sprintf(`host "api.example.com" belongs to namespace %q (HTTPRoute %s/api)`, owner, owner)},
		"api.example.com")
	denied(t, "unclaimed", []string{`host "free.example.org" is not a name of a Service in namespace`}, "free.example.org")

	admitted(t, "own-names", "app", "app."+tenant, "app."+tenant+".svc", "app."+tenant+".svc.cluster.local")

	grant := fmt.Sprintf("%s=%s/shop.example.com, %s/*.%s.svc.cluster.local", v1alpha1.AnnotationHostGrants, tenant, tenant, owner)
	if _, err := e.c.Kubectl(ctx, "", "annotate", "namespace", owner, grant); err != nil {
		t.Fatal(err)
	}
	admitted(t, "granted", "shop.example.com", "store."+owner+".svc.cluster.local")
	denied(t, "not-granted", []string{`host "web.example.com" belongs to namespace`}, "web.example.com")
}

// testHostOwnershipRecheck: admission is not the only guard. A Canary
// admitted while its host was granted keeps its spec when the grant is
// withdrawn; at its next change the traffic controller checks again, stops
// serving the host and says so in the HostsOwned condition and an event;
// the condition clears when the host is gone from the spec.
func (e *env) testHostOwnershipRecheck(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tenant, owner := e.c.Namespace(t), e.c.Namespace(t)
	gw := fmt.Sprintf(`apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: public, namespace: %s}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["recheck.example.com"]}]
`, owner)
	if _, err := e.c.Kubectl(ctx, gw, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	grant := fmt.Sprintf("%s=%s/recheck.example.com", v1alpha1.AnnotationHostGrants, tenant)
	if _, err := e.c.Kubectl(ctx, "", "annotate", "namespace", owner, grant); err != nil {
		t.Fatal(err)
	}
	const name = "recheck"
	manifest := deploy{ns: tenant, name: name, image: "6.0.0"}.yaml() + "---\n" + hostCanary(tenant, name, "recheck.example.com")
	if _, err := e.c.Kubectl(ctx, manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the engine initialises the Canary", func() error {
		phase, err := e.c.Kubectl(ctx, "", "get", "canary", name, "-n", tenant, "-o", "jsonpath={.status.phase}")
		if err == nil && phase == "" {
			err = fmt.Errorf("no phase yet")
		}
		return err
	})

	if _, err := e.c.Kubectl(ctx, "", "annotate", "namespace", owner, v1alpha1.AnnotationHostGrants+"-"); err != nil {
		t.Fatal(err)
	}
	// A change that keeps the hosts passes admission.
	if _, err := e.c.Kubectl(ctx, "", "patch", "canary", name, "-n", tenant, "--type=merge", "-p", `{"spec":{"progressDeadlineSeconds":600}}`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the HostsOwned condition turns False", func() error {
		out, err := e.c.Kubectl(ctx, "", "get", "canary", name, "-n", tenant, "-o",
			`jsonpath={.status.conditions[?(@.type=="HostsOwned")].status} {.status.conditions[?(@.type=="HostsOwned")].message}`)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(out, "False ") || !strings.Contains(out, "recheck.example.com") {
			return fmt.Errorf("condition %q", out)
		}
		return nil
	})
	eventually(t, time.Minute, "a HostsNotOwned event", func() error {
		out, err := e.c.Kubectl(ctx, "", "get", "events.events.k8s.io", "-n", tenant, "-o", "jsonpath={.items[*].reason}")
		if err == nil && !strings.Contains(out, "HostsNotOwned") {
			err = fmt.Errorf("events %q", out)
		}
		return err
	})

	// Without the host, the condition clears.
	if _, err := e.c.Kubectl(ctx, "", "patch", "canary", name, "-n", tenant, "--type=json", "-p", `[{"op":"remove","path":"/spec/service/hosts"}]`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the HostsOwned condition turns True", func() error {
		out, err := e.c.Kubectl(ctx, "", "get", "canary", name, "-n", tenant, "-o", `jsonpath={.status.conditions[?(@.type=="HostsOwned")].status}`)
		if err == nil && out != "True" {
			err = fmt.Errorf("condition %q", out)
		}
		return err
	})
}
