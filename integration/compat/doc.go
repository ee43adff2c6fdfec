// Package compat holds the end-to-end tests of Flagger compatibility on
// the real local cluster: Canaries written the way Flagger's documentation
// writes them (Istio, Gateway API, Linkerd and plain Kubernetes
// flavours, testdata/*.yaml) are applied with kubectl, with serin's
// webhook running, and accepted as they are; kubectl prints a warning for
// each field serin ignores, and the Canary's Compatible condition lists
// the same fields.
package compat
