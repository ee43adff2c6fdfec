// Package istio splices serin's translated resources into the Envoys of an
// Istio mesh (sidecars and gateways) through EnvoyFilter objects, and
// renders the bootstrap override that lets those Envoys reach serin.
//
// Everything here is a pure render function: a model.Release and Options
// in, Kubernetes objects out, with deterministic names and labels
// (app.kubernetes.io/managed-by: serin, serin.dev/release: a hash of the
// release key). Writing them to the cluster belongs to the caller.
//
// # What one release becomes
//
// One EnvoyFilter per release and patch context, so that istiod applies
// a release's clusters and the routes that use them in the same push:
//
//   - for sidecars (SIDECAR_OUTBOUND), in the release's own namespace.
//     Istio applies an EnvoyFilter outside its root namespace to the
//     proxies of that namespace only, so a release reaches its own
//     namespace's clients and can never patch another tenant's proxies.
//     Options.MeshWideSidecars moves it to the root namespace, for
//     clients in every namespace (its patches still touch only names of
//     the release's own Service: its virtual host, its cluster IPs).
//   - for gateways (GATEWAY), when the release names gateways, in the
//     root namespace, where the shared gateways find it. These patches
//     select virtual hosts by the release's hosts: the traffic controller
//     passes only hosts the Canary's namespace owns
//     (v1alpha1.HostOwnership), and admission rejects the others.
//
// With gateways (or service.delegation), also the VirtualService that
// Flagger's Istio router writes: named after the Service, binding the
// release's hosts to its gateways (a delegate: neither), one route to the
// Service, for the gateway patches to merge onto (RenderVirtualService).
// A VirtualService of that name that serin did not make is left alone, and
// serin's own claim no host (v1alpha1.HostOwnership), so they follow the
// namespace's ownership and never make it.
//
// Their patches:
//
//   - CLUSTER ADD of translate's three clusters, whose EDS config source
//     points at serin, never at istiod: a weight step stays one EDS push
//     from serin, with no istiod recompute.
//   - HTTP_ROUTE INSERT_FIRST of the A/B and sticky-session routes into
//     Istio's own route table, in the service's virtual host
//     (<svc>.<ns>.svc.cluster.local:<port> in the table of the port; in a
//     gateway, the virtual hosts serving one of the release's hosts).
//     istiod inserts each at the top in turn, so they are listed last to
//     first.
//   - HTTP_ROUTE MERGE of the default route's action (the weighted
//     cluster, mirror policy, timeout, retries, rewrites, headers, hash
//     policy, the session Set-Cookie and the CORS policy, which Istio's
//     own CORS filter applies) onto every forwarding route Istio already has in
//     that virtual host: its "default" route, or the routes of a
//     VirtualService. Their names and matches stay Istio's. istiod applies
//     merges before inserts, so serin's inserted routes are not merged.
//     serin never replaces a route table: Istio shares them per port.
//   - For TCP, NETWORK_FILTER MERGE of the cluster onto the service's own
//     tcp_proxy. Istio gives each TCP service its own outbound listener,
//     <clusterIP>_<port>, so the patch names it; matching the port alone
//     would capture every TCP service on that port. A TCP release therefore
//     needs model.Release.ClusterIPs. Gateways are not patched for TCP.
//
// # Reaching serin
//
// Envoy accepts an envoy_grpc config source only if its cluster is static
// in the bootstrap (Envoy's checkApiConfigSourceSubscriptionBackingCluster;
// istio/istio#35969), so a cluster added by an EnvoyFilter cannot carry
// serin's xDS. Two modes, chosen by Options.Translate.Source:
//
//   - StaticCluster (bootstrap override): RenderBootstrapOverride renders a
//     per-namespace ConfigMap that pods select with the
//     sidecar.istio.io/bootstrapOverride annotation. It adds a static
//     serin-xds cluster (HTTP/2, keepalive, raised circuit breakers) and
//     the node metadata SERIN_XDS=bootstrap. Every patch matches that
//     metadata, because a proxy without the static cluster would reject
//     serin's clusters and, with them, its whole CDS update. Proxies read
//     the override when they start, so existing pods need a restart.
//   - GoogleGRPC: the clusters name serin by target URI; no bootstrap
//     change. With mutual TLS only the proxies marked SERIN_XDS=google-grpc
//     (see Identity) are patched; in plaintext every proxy is.
//
// # Identity
//
// Both modes talk TLS straight to serin (serin's own pod, if it has a
// sidecar, does not intercept the xDS port) and present the pod's Istio
// workload certificate, whose SPIFFE identity serin maps to the pod's
// namespace; serin trusts Istio's root through --xds-client-ca.
//
//   - StaticCluster: the client certificate comes from the pod's agent over
//     SDS ("default", as for Istio's own clusters); serin's serving
//     certificate is checked against Options.XDSCABundle (inlined) with a
//     SAN match on Options.XDSServerName, serin's xDS Service
//     <service>.<namespace>.svc. serin re-renders the ConfigMaps when the
//     bundle changes, but proxies read it only at start, and the builtin
//     rotator keeps a retiring CA in the bundle for its propagation delay
//     only (seconds): after a rotation of serin's CA (years apart by
//     default) proxies started before it cannot reconnect until they
//     restart.
//   - GoogleGRPC: google_grpc takes its client certificate only from files
//     (ssl_credentials cert_chain/private_key), so serin's pod webhook asks
//     Istio's agent to write the workload certificate into an in-memory
//     volume of the proxy (proxy metadata OUTPUT_CERTS, the mechanism
//     Istio documents for Prometheus' scrapes), and the clusters point at
//     those files; root_certs is serin's CA bundle, inlined, so a rotation
//     reaches running proxies with the next EnvoyFilter write. The webhook
//     also sets proxy metadata ISTIO_META_SERIN_XDS=google-grpc, which
//     Istio turns into the node metadata the patches match
//     (Options.ProxyMetadata): a proxy without the files would reject the
//     clusters, and with them its whole CDS update. Pods started before
//     their namespace opted in need a restart. The target
//     URI's host must be a name of serin's serving certificate.
//
// With serin's --xds-plaintext, Options.XDSPlaintext (and no root CA for
// GoogleGRPC) render plaintext channels instead.
//
// Either way each source has a finite initial_fetch_timeout (Istio's own
// are 0s, wait forever): with serin down, proxies warm up without serin's
// clusters instead of hanging, and serin should run more than one replica.
//
// # Known limits
//
//   - routeConfiguration.gateway cannot select a gateway's plain-HTTP route
//     tables (istiod fills the gateway name only for HTTPS servers), so
//     gateway patches select virtual hosts by domain. As with Flagger, a
//     release's public hosts are assumed to route to that release only:
//     every forwarding route of those virtual hosts is merged.
//   - EnvoyFilter cannot target ambient waypoints (istio.io#16477).
//   - A service match (service.match) narrows serin's inserted routes
//     only: which requests Istio's own routes take stays Istio's (or your
//     VirtualService's) decision, and the MERGE applies to all of them.
//   - The MERGE sets prefix_rewrite when the release rewrites URIs; a
//     VirtualService route that already uses regex_rewrite would then be
//     rejected by Envoy.
package istio
