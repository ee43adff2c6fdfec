#!/usr/bin/env bash
# Builds the tools serin's tests and demo need into a cache outside the
# checkout (keyed by tool, version and Go version) and links them into bin/.
# A tool is built only when its cache entry is missing, so a fresh clone on a
# machine that built them once is ready in seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/bin"
CACHE="${SERIN_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/serin-tools}"
GOVER=$(go env GOVERSION)

KUBE_VERSION=$(awk '$1=="k8s.io/kubernetes"{print $2}' "$ROOT/tools/go.mod")
ETCD_VERSION=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2}' "$ROOT/tools/go.mod")
KWOK_VERSION=v0.8.0
CONTROLLER_GEN_VERSION=v0.21.0
HELM_VERSION=v4.3.1
STATICCHECK_VERSION=v0.8.2
# istiod (pilot-discovery) at the istio.io/istio version the Istio checks pin.
ISTIO_VERSION=$(awk '$1=="istio.io/istio"{print $2}' "$ROOT/integration/istiocheck/go.mod")
# Prometheus 2.54.1 (module versions v0.<minor>.<patch>).
PROMETHEUS_VERSION=v0.54.1

mkdir -p "$BIN" "$CACHE"

log() { printf 'tools: %s\n' "$*" >&2; }

# link NAME DIR: point bin/NAME at DIR/NAME.
link() { ln -sfn "$2/$1" "$BIN/$1"; }

# cached KEY: prints the cache directory for KEY; returns 0 if it is complete.
cached() { [ -f "$CACHE/$1/.done" ]; }

go_install() { # name key pkg@version
	local name=$1 key=$2 pkg=$3 dir="$CACHE/$2"
	if ! cached "$key"; then
		log "building $name ($pkg) into $dir"
		rm -rf "$dir" && mkdir -p "$dir"
		GOBIN="$dir" GOFLAGS=-mod=mod go install "$pkg"
		touch "$dir/.done"
	fi
	link "$name" "$dir"
}

# Kubernetes: kube-apiserver, kube-controller-manager, kube-scheduler and
# kubectl from k8s.io/kubernetes through the tools module, version-stamped so
# clients that parse the server version work.
kube() {
	local sum key dir
	sum=$(cat "$ROOT/tools/go.mod" "$ROOT/tools/go.sum" | sha256sum | cut -c1-12)
	key="kubernetes-$KUBE_VERSION-$GOVER-$sum"
	dir="$CACHE/$key"
	if ! cached "$key"; then
		log "building Kubernetes $KUBE_VERSION into $dir (about 10 minutes on 2 cores the first time)"
		rm -rf "$dir" && mkdir -p "$dir"
		local minor ldflags=""
		minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
		for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
			ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
			ldflags+=" -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000"
			ldflags+=" -X $p.buildDate=1970-01-01T00:00:00Z"
		done
		(cd "$ROOT/tools" && go build -trimpath -ldflags "-s -w $ldflags" -o "$dir/" \
			k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
			k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
		touch "$dir/.done"
	fi
	for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do link "$b" "$dir"; done
}

etcd() {
	local sum key dir
	sum=$(cat "$ROOT/tools/go.mod" "$ROOT/tools/go.sum" | sha256sum | cut -c1-12)
	key="etcd-$ETCD_VERSION-$GOVER-$sum"
	dir="$CACHE/$key"
	if ! cached "$key"; then
		log "building etcd $ETCD_VERSION into $dir"
		rm -rf "$dir" && mkdir -p "$dir"
		(cd "$ROOT/tools" && go build -trimpath -ldflags "-s -w" -o "$dir/etcd" go.etcd.io/etcd/server/v3)
		touch "$dir/.done"
	fi
	link etcd "$dir"
}

# kwok and the Stage objects that make its nodes Ready and pods Running;
# they ship in the kwok module.
kwok() {
	go_install kwok "kwok-$KWOK_VERSION-$GOVER" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
	local dir="$CACHE/kwok-$KWOK_VERSION-$GOVER" src
	if [ ! -f "$dir/kwok-stages/.done" ]; then
		src=$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		mkdir -p "$dir/kwok-stages"
		cp "$src/kustomize/stage/node/fast/node-initialize.yaml" \
			"$src/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
			"$src/kustomize/stage/pod/fast/pod-ready.yaml" \
			"$src/kustomize/stage/pod/fast/pod-complete.yaml" \
			"$src/kustomize/stage/pod/fast/pod-delete.yaml" "$dir/kwok-stages/"
		chmod 644 "$dir/kwok-stages/"*.yaml
		touch "$dir/kwok-stages/.done"
	fi
	ln -sfn "$dir/kwok-stages" "$BIN/kwok-stages"
}

# Prometheus for the analysis tests and the demo, built from source with the
# Kubernetes service discovery (Debian's package leaves every cloud and
# Kubernetes discovery out). Only the Kubernetes plugin is compiled in, besides
# file and HTTP discovery which are always there. Its go.mod has replace
# directives, so `go install pkg@version` refuses it: build in a copy of the
# module instead.
prometheus() {
	local key="prometheus-$PROMETHEUS_VERSION-$GOVER" dir src build v
	dir="$CACHE/$key"
	if ! cached "$key"; then
		log "building Prometheus $PROMETHEUS_VERSION (Kubernetes discovery only) into $dir (about 5 minutes on 2 cores the first time)"
		src=$(GOFLAGS=-mod=mod go mod download -json "github.com/prometheus/prometheus@$PROMETHEUS_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		build=$(mktemp -d)
		cp -r "$src/." "$build/" && chmod -R u+w "$build"
		cat >"$build/plugins/plugins.go" <<-'EOF'
			// Package plugins registers the service discoveries compiled in.
			package plugins

			import (
				// Register kubernetes plugin.
				_ "github.com/prometheus/prometheus/discovery/kubernetes"
			)
		EOF
		v=$(echo "$PROMETHEUS_VERSION" | sed 's/^v0\.\([0-9]*\)\.\([0-9]*\)$/2.\1.\2/')
		rm -rf "$dir" && mkdir -p "$dir"
		(cd "$build" && GOFLAGS=-mod=mod go build -trimpath \
			-ldflags "-s -w -X github.com/prometheus/common/version.Version=$v -X github.com/prometheus/common/version.Branch=serin-tools" \
			-o "$dir/prometheus" ./cmd/prometheus)
		rm -rf "$build"
		touch "$dir/.done"
	fi
	link prometheus "$dir"
}

# istiod for the tests that run serin's EnvoyFilters through a real Istio
# control plane. istio.io/istio has no replace directives, so go install
# builds it at the pinned version.
istiod() {
	go_install pilot-discovery "istiod-$ISTIO_VERSION-$GOVER" "istio.io/istio/pilot/cmd/pilot-discovery@$ISTIO_VERSION"
}

# Debian packages: hey for load.
apt_packages() {
	local missing=()
	command -v hey >/dev/null || missing+=(hey)
	[ ${#missing[@]} -eq 0 ] && return
	if [ "$(id -u)" != 0 ]; then
		log "please install as root: apt-get install -y --no-install-recommends ${missing[*]}"
		return 1
	fi
	log "installing ${missing[*]} from Debian"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	# Debian's postinst tries to start the system service; serin runs its own.
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	rm -f /usr/sbin/policy-rc.d
}

what=${1:-all}
case "$what" in
all)
	apt_packages
	etcd
	kwok
	prometheus
	go_install controller-gen "controller-gen-$CONTROLLER_GEN_VERSION-$GOVER" "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_GEN_VERSION"
	go_install helm "helm-$HELM_VERSION-$GOVER" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
	go_install staticcheck "staticcheck-$STATICCHECK_VERSION-$GOVER" "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	kube
	istiod
	;;
istiod) istiod ;;
kube) kube ;;
etcd) etcd ;;
kwok) kwok ;;
prometheus) prometheus ;;
apt) apt_packages ;;
controller-gen) go_install controller-gen "controller-gen-$CONTROLLER_GEN_VERSION-$GOVER" "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_GEN_VERSION" ;;
helm) go_install helm "helm-$HELM_VERSION-$GOVER" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" ;;
staticcheck) go_install staticcheck "staticcheck-$STATICCHECK_VERSION-$GOVER" "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ;;
*) log "unknown tool $what"; exit 2 ;;
esac
