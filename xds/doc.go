// Package xds is the root of serin's traffic stack. It holds no code; this
// page is the tour. Traffic flows through the subpackages in this order,
// each importing only the ones before it:
//
//		Canary status + Deployment + Pods + Services      (Kubernetes objects)
//		   │  build      pure: objects → model.Release
//		   ▼
//		model.Release                                      (plain structs, YAML)
//		   │  translate  pure: model → Envoy clusters, endpoints, routes, listeners
//		   ▼
//		translate.Resources ──► istio   pure: model → EnvoyFilters, bootstrap ConfigMap
//		   │  server     go-control-plane caches, ADS/xDS/LRS over gRPC,
//		   ▼             per-proxy ACK/NACK tracking, load reports
//		Envoys and proxyless gRPC clients
//
//	  - model is the intermediate representation: one Release per released
//	    service port (<namespace>/<service>/<port>) with both tracks'
//	    endpoints, the canary weight and the route features in force. It
//	    validates itself and names every xDS resource.
//	  - build turns a Canary, its target Deployment and the namespace's pods
//	    and Services into a model.Release. It is pure and golden-tested
//	    (testdata/in: objects as the API server returns them; testdata/out:
//	    the model).
//	  - translate turns a Release into Envoy resources and validates them the
//	    way Envoy and grpc-go will; golden-tested.
//	  - istio renders the EnvoyFilters that splice translate's clusters and
//	    routes into Istio's own Envoys, and the bootstrap override that lets
//	    those Envoys reach serin; golden-tested and checked with Istio's own
//	    validation and patch code (integration/istiocheck).
//	  - server publishes translate.Resources per release into
//	    go-control-plane's caches, serves them over gRPC, tracks which proxy
//	    acknowledged what, reverts a rejected resource to its last good
//	    content, and keeps the load reports the data plane sends.
//	  - traffic is the Kubernetes-facing side and the only package here that
//	    does I/O against the API server: a controller, run on every replica,
//	    that follows Canaries, Deployments, Pods and Services, builds,
//	    translates and publishes each release, writes the Istio objects, and
//	    answers the release engine's one question — has the data plane
//	    applied the traffic now in this Canary's status? — for the proxies of
//	    every replica (each replica shares its proxies' state in a Lease,
//	    and the load they reported in another, which the leader's analysis
//	    sums).
//
// The release engine (package rollout) never imports these packages: it
// consumes one small interface (rollout.TrafficStatus) that traffic's
// Controller implements. Other routers (Gateway API HTTPRoutes, SMI
// TrafficSplit) sit beside traffic and implement the same interface, so
// the engine does not change when one is added.
package xds
