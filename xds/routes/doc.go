// Package routes renders a release as the objects of the routers that are
// not serin's own xDS server: a Gateway API HTTPRoute (a GRPCRoute for a
// gRPC port, a TCPRoute for a TCP one) whose parents are the release's
// gatewayRefs, or its Service itself when there are none (GAMMA: how
// Istio's sidecars and ambient waypoints, Linkerd and the other GAMMA
// meshes route a Service), and an SMI TrafficSplit, which Linkerd reads
// through its SMI extension.
//
// Like Flagger's routers, each object is named after the Service and sends
// to the Services serin owns, <svc>-primary (stable pods) and <svc>-canary
// (canary pods), with the release's weight. The package is pure (a
// model.Release in, objects out) and golden-tested; xds/traffic writes the
// objects and reads back whether their controllers accepted them.
package routes
