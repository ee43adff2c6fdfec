// Package istiocheck holds serin's checks of its Istio glue against Istio's
// own code, in a module of its own because istio.io/istio is large and pins
// dependency versions the main module should not follow.
//
// The tests take every case of xds/istio's testdata and
//
//   - run Istio's EnvoyFilter validation on the rendered objects, after a
//     round trip through the YAML that would be applied to the API server;
//   - build proxy configuration with istiod's own generator (the
//     ConfigGenTest harness of pilot/pkg/networking/core) for services,
//     gateways and virtual services declared as Istio objects, with serin's
//     EnvoyFilters in the root namespace, and check that the patched route
//     tables, clusters and listeners send the service's traffic to serin's
//     clusters and pass serin's own recursive validation.
//
// Run with: cd integration/istiocheck && go test ./...
// (the first build compiles istiod and takes minutes).
package istiocheck
