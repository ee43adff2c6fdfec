// Package migrate brings a Flagger user to serin. Import (pure) turns
// Flagger's manifests into serin's objects: annotations on the Deployment
// where they express a Canary's spec, a serin.dev Canary where they do
// not. Takeover hands the Canaries a Flagger controller was running over
// to serin on a live cluster, one idempotent step at a time: the user's
// Deployment comes back up on the template Flagger's primary runs, the
// Service points back at it once it serves, and Flagger's objects go.
package migrate
