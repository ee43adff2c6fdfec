// Package install tests serin's install artefacts: the Helm chart
// (charts/serin), the kustomize base (manifests) and the built-in webhook
// certificates (admission/certs). Rendering checks need only bin/helm and
// bin/kubectl; the rest runs against the real local cluster — server-side
// dry runs of every rendering, a real install in URL mode, and certificate
// rotation under a steady stream of admission requests.
package install
