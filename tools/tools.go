//go:build tools

// Package tools pins the versions of the binaries that the integration
// environment runs: etcd and the Kubernetes control plane. They are built
// from source into bin/ by the Makefile; nothing in serin imports this module.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
