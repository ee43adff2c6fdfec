// Package cluster runs a real Kubernetes control plane on loopback for
// serin's integration tests and demo: etcd, kube-apiserver (TLS, RBAC, an
// admin client certificate), kube-controller-manager, kube-scheduler and
// kwok with a few fake nodes whose pods get loopback IPs, so that
// integration/podsim can make them answer.
//
// The binaries come from bin/ (built by `make tools`). Each cluster lives in
// its own temporary directory, on free loopback ports, with its own /16 of
// 127.0.0.0/8 for pod IPs and a /20 of 127.240.0.0/12 for Service cluster
// IPs, so test packages can run their clusters side by side and a test can
// listen on a cluster IP (there is no kube-proxy). Use Main from a package's TestMain to get one cluster per package;
// tests then work in namespaces of their own.
//
// It also holds the helpers every integration package shares: Process
// (a command logging to a file, stopped with SIGTERM then SIGKILL),
// StopPIDFile, FreePorts, Tail, Run, Kubectl, RepoRoot, DefaultBinDir and
// ModuleDir.
package cluster
