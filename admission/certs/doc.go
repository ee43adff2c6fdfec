// Package certs owns the serving certificates of serin's admission webhooks
// when serin makes them itself (`--webhook-cert-mode=builtin`).
//
// A Rotator keeps one Secret (serin-webhook-tls in serin's namespace) with a
// self-signed CA and a serving certificate for the webhook Service, writes
// the CA bundle into every webhook of the named Mutating and Validating
// webhook configurations, and hands the current certificate to the webhook
// server's TLS config, so a new certificate is served within a second of
// reaching the Secret. It runs on every replica; all replicas read the same
// Secret and write it with optimistic concurrency, so they never fight: the
// first write wins and the others see its result.
//
// The Secret holds:
//
//	ca.crt   the CA bundle: the signing CA first, then retired CAs that are
//	         still trusted while a certificate they signed may be in use
//	ca.key   the signing CA's key
//	tls.crt  the serving certificate
//	tls.key  its key
//
// What to do is decided by a pure function, Decide, from the time, the
// Secret's content and two observations of this replica (since when the
// webhook configurations trust the signing CA, and since when the current
// serving certificate is served). Rotation keeps the API server able to
// verify serin at every moment:
//
//  1. A serving certificate is renewed when less than ServingRenewBefore of
//     its life remains; the CA likewise with CARenewBefore.
//  2. A new CA is added to the bundle first and the webhook configurations
//     are patched; only when they have trusted it for PropagationDelay is a
//     serving certificate signed by it written.
//  3. The old CA leaves the bundle when the new serving certificate has been
//     served for PropagationDelay.
//
// Wiring, in serin controller (builtin mode):
//
//	rot, err := certs.New(clientset, certs.Options{Namespace: ns, SecretName: secret,
//		ServiceName: service, WebhookConfigName: configName, IPs: ips,
//		Metrics: certs.NewMetrics(crmetrics.Registry), Log: log})
//	mgr.Add(rot)
//	srv := webhook.NewServer(webhook.Options{Port: port, TLSOpts: []func(*tls.Config){rot.ConfigureTLS}})
//	mgr.AddReadyzCheck("webhook-certificate", rot.Ready)
//
// The chart and the kustomize base create the Secret empty, so serin needs
// no right to create Secrets (the Rotator creates it only when it is
// missing, e.g. for a local process); RBAC needs get, list, watch
// and update on it by name, and get, list, watch and patch on the two
// webhook configurations by name.
//
// In `dir` mode (cert-manager, or any tool that writes a kubernetes.io/tls
// Secret) nothing here runs: mount the Secret and point controller-runtime's
// webhook server at it (webhook.Options.CertDir). Its certificate watcher
// re-reads tls.crt and tls.key when the kubelet swaps the mounted files
// (inotify), and polls every 10 seconds besides; cert-manager's CA injector
// writes the caBundle.
package certs
