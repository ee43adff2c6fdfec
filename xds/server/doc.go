// Package server is serin's embedded xDS control plane: it serves the Envoy
// resources of every release to Envoys and proxyless gRPC clients, tracks
// what each of them has applied, turns rejections into a metric, an event
// and the last good configuration, and collects load reports.
//
// It owns the gRPC server (ADS in state-of-the-world and delta form, the
// plain CDS, EDS, RDS and LDS services that Istio's Envoys use as a second
// configuration source, and the LRS service), the caches, the per-stream
// ACK bookkeeping and the load report store. It knows nothing about
// Kubernetes or about how the resources are made: the engine hands it
// translate.Resources per release and asks it questions.
//
// # Caches
//
// Each resource type has its own go-control-plane LinearCache, behind a
// MuxCache. A LinearCache versions every resource separately and wakes only
// the watches of the resources that changed, so a weight step, which
// changes one ClusterLoadAssignment, is one cache update that reaches only
// the proxies subscribed to that assignment; clusters, routes and listeners
// are untouched. Publish replaces one release's resources and diffs them
// against what that release published before, by their deterministic
// encoding: unchanged resources do not touch the caches at all. Cache
// versions carry a prefix made at process start, so a proxy reconnecting to
// a restarted serin is never told that a version it already holds is
// current; it is sent the current content and acknowledges it.
//
// # ACK tracking
//
// go-control-plane's stream callbacks run on each stream's goroutine, in
// the order of the stream's requests and responses. The tracker mirrors the
// server's view of each subscription (using go-control-plane's own
// subscription type, so wildcard rules match exactly), records the content
// of every resource sent, and on the next request decides: a
// state-of-the-world request carrying the latest nonce ACKs that response,
// or NACKs it when it has an error_detail; a delta request ACKs or NACKs the
// response whose nonce it names. A full-state (CDS, LDS) ACK replaces what
// the proxy holds. A delta proxy that reconnects lists the versions it
// holds; since the cache will not resend those, they count as
// acknowledged. Content is identified by a hash of its encoded bytes (the
// same SHA-256 that go-control-plane puts in delta versions), and each
// resource keeps its last few contents with the generation that published
// them, so Applied can say whether every subscribed proxy holds the content
// of a given generation or newer. An ACK means the proxy accepted the
// configuration; grpc-go installs its new picker a few milliseconds later,
// asynchronously, which callers measuring traffic should allow for.
//
// # NACKs
//
// A rejection is counted (serin_xds_nack_total), logged and reported by
// Applied, and the OnNACK hook is called; the engine halts the release. The
// content the rejecting proxy last acknowledged is put back into the cache
// as a new version, sent once to every subscriber and acknowledged, and the
// resource stays that way until a Publish changes it; republishing the
// rejected content changes nothing. The guarded cache fixes the cases where
// go-control-plane itself would resend a rejected version in a loop (the
// snapshot cache does it for every NACK, go-control-plane#962): LinearCache
// answers any state-of-the-world request whose version is empty or lacks
// its prefix by resending everything subscribed, and a NACK of the very
// first response, or one sent to a restarted serin, looks exactly like that.
// Such NACKs are given the cache's prefix, so the cache waits for a real
// change. Delta NACKs do not loop in LinearCache.
//
// # Readiness
//
// Connections and streams are accepted from the start, but discovery
// streams are held in an interceptor until SetReady, which the engine calls
// once informers are synced and the releases recorded in Canary status have
// been published again: a control plane that answers before it knows the
// world sends proxies an empty configuration and tears their traffic down
// (projectcontour/contour#1280). A held stream ends when its context does.
// Load reports are accepted at once.
//
// # Who may ask for what
//
// Unless Options.Open (plaintext, which an admin asks for), a stream needs
// a verified client certificate with a SPIFFE identity
// (spiffe://<trust-domain>/ns/<ns>/sa/<sa>), else it ends with
// Unauthenticated. Each published release carries a model.Visibility (its
// namespace and its Service's exportTo); the tracker drops from every
// response, state-of-the-world or delta, wildcard or not, the resources the
// stream's namespace may not see, before it records what was sent. The
// rest follows: a NACK blames only resources the stream was sent, Applied
// does not wait for streams that may not see a release, and a proxy that
// subscribes to another namespace's names gets empty responses.
//
// # Load reports
//
// The LRS service asks every client for all its clusters every second
// (configurable), and files the counts per cluster, per locality sub_zone
// (the track) and per second, for a bounded time. LoadReports sums them over
// a window. grpc-go reports only on clusters whose CDS resource names an LRS
// server (lrs_server: {self: {}}). Only clusters serin publishes and the
// reporter may see are filed, at most MaxLoadClusters per stream; the rest
// are counted in serin_xds_load_reports_dropped_total, so junk names never
// grow the store.
//
// Only the leader analyses, but reports reach whichever replica a proxy is
// connected to, so the store's stable and canary counts can be taken out
// as a LoadSnapshot and put back with SeedLoads. LoadCompaction and
// EncodeLoads make a snapshot small enough to share in an annotation: one
// bucket a second for the last two minutes, ten-second buckets up to the
// retention, a compact text form, and a byte budget kept by leaving out
// the oldest buckets first (and counting them). A window sums every bucket
// it overlaps, so a coarse bucket never loses requests at a window's
// edge. xds/traffic does the sharing.
//
// # Where go-control-plane shaped the code
//
//   - The NACK resend loop above, and MuxCache ending a whole ADS stream on a
//     request for a type it does not serve (such requests get a watch that
//     never fires instead).
//   - Both stream servers cancel and recreate a watch on every request, each
//     under the type's single cache lock. With a thousand proxies ACKing one
//     step, those locks convoyed; cancelling a watch that has already fired
//     is a no-op, so the guarded cache skips the lock for it.
//   - State-of-the-world and delta streams are numbered independently, and
//     only the first request of a stream is guaranteed to carry the node.
//   - State-of-the-world responses carry bare Anys; resource names are read
//     from field 1 of the encoding rather than by decoding each resource.
package server
