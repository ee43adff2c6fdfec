// Package admission holds the end-to-end tests of serin's admission
// webhooks on the real local cluster: the hold of each new revision of an
// opted-in Deployment at `kubectl apply` (and its silence for everything
// else), the rejection of bad Canaries, MetricTemplates, AlertProviders and
// serin annotations, the engine's repair of a revision applied while the
// webhook was down, and the latency the webhook adds to an apply.
package admission
