# serin — make help lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE_PLATFORMS ?= linux/amd64
LDFLAGS := -s -w -X github.com/serin-dev/serin/cmd/serin/app.Version=$(VERSION)
# Integration tests start one real cluster per package; two at a time fit 2 cores.
TEST_PARALLEL ?= 2
TEST_TIMEOUT ?= 45m
CLUSTER_DIR ?= $(CURDIR)/.cluster
export SERIN_BIN_DIR := $(BIN)
export PATH := $(BIN):$(PATH)

##@ General
.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Build
.PHONY: build
build: ## Build bin/serin (and bin/kubectl-serin, the kubectl plugin)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/serin ./cmd/serin
	ln -sf serin $(BIN)/kubectl-serin
	$(GO) build -o $(BIN)/podsim ./integration/podsim/cmd/podsim
	$(GO) build -o $(BIN)/cluster ./integration/cluster/cmd/cluster

.PHONY: image
image: ## Build serin's OCI image without a container daemon: dist/image (OCI layout), dist/image.tar, SBOMs; prints the digest to pin
	$(GO) run ./hack/image -out dist -version $(VERSION) -platforms $(IMAGE_PLATFORMS)

.PHONY: tools
tools: ## Install test tools into bin/ (apt: hey; built: etcd, Kubernetes, kwok, Prometheus, controller-gen, helm, staticcheck)
	hack/tools.sh all

.PHONY: generate
generate: tools-codegen ## Generate deepcopy code, CRDs, RBAC and webhook manifests
	$(BIN)/controller-gen object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(BIN)/controller-gen crd:allowDangerousTypes=true paths=./api/v1alpha1/... output:crd:dir=manifests/crd
	$(BIN)/controller-gen crd:allowDangerousTypes=true paths=./api/flaggerv1beta1/... output:crd:dir=manifests/flagger
	$(BIN)/controller-gen rbac:roleName=serin paths=./... output:rbac:dir=manifests/rbac
	$(BIN)/controller-gen webhook paths=./admission/... output:webhook:dir=manifests/webhook
	hack/sync-chart.sh

.PHONY: check-generate
check-generate: generate ## Fail if generated files are out of date
	@git diff --exit-code -- api manifests charts || { echo "generated files are stale: run make generate and commit"; exit 1; }

.PHONY: tools-codegen
tools-codegen:
	@[ -x $(BIN)/controller-gen ] || hack/tools.sh controller-gen

##@ Test
.PHONY: test
test: tools ## Run every test: unit, integration (real local cluster) and the Istio checks
	$(MAKE) test-unit test-integration test-istio

.PHONY: test-unit
test-unit: ## Unit tests with the race detector (no cluster)
	$(GO) test -race -short -count=1 ./...

.PHONY: test-deps
test-deps: ## Install, when missing, the Debian packages of the real metric servers (influxdb, graphite-carbon, graphite-web) and gRPC C-core (python3-grpcio; root)
	hack/test-deps.sh

.PHONY: test-integration
test-integration: tools test-deps ## Integration tests on a real local cluster (etcd, kube-apiserver, kwok, podsim, Prometheus) and real metric servers
	$(GO) test -race -count=1 -p $(TEST_PARALLEL) -timeout $(TEST_TIMEOUT) ./integration/...

.PHONY: test-istio
test-istio: ## Check serin's EnvoyFilters with Istio's own validation and patch code
	@if [ -f integration/istiocheck/go.mod ]; then cd integration/istiocheck && $(GO) test -count=1 ./...; fi

.PHONY: bench
bench: ## Run the benchmarks and print their figures
	$(GO) test -run '^$$' -bench . -benchmem ./xds/... ./admission/... ./analysis/... ./rollout/...

.PHONY: bench-scale
bench-scale: tools ## Scale scenario on the local cluster at full size (1,000 Deployments; 100 releases together, then 10 a second for a minute); prints its figures (make test runs a small version)
	SERIN_SCALE=$(or $(SERIN_SCALE),full) $(GO) test -count=1 -v -timeout 90m -run 'TestScale$$' ./integration/scale/

.PHONY: model
model: ## Long run of the release engine's model-based test (100,000 random sequences; prints how many ran)
	$(GO) test ./rollout/ -count=1 -run 'TestModel$$' -v -timeout 60m -mbt.n=100000

.PHONY: lint
lint: ## go vet, gofmt and staticcheck
	@[ -x $(BIN)/staticcheck ] || hack/tools.sh staticcheck
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(BIN)/staticcheck ./...

##@ Local cluster
.PHONY: cluster-up
cluster-up: tools ## Start the local cluster (prints its KUBECONFIG)
	$(GO) build -o $(BIN)/cluster ./integration/cluster/cmd/cluster
	$(BIN)/cluster -dir $(CLUSTER_DIR) up

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and remove its state
	@if [ -x $(BIN)/cluster ]; then $(BIN)/cluster -dir $(CLUSTER_DIR) down; else rm -rf $(CLUSTER_DIR); fi

.PHONY: demo
demo: tools build ## Run a whole release locally: cluster, serin, a demo app, a promotion and a rollback
	hack/demo.sh

.PHONY: clean
clean: cluster-down ## Remove build output (the tool cache outside the checkout stays)
	rm -rf $(BIN)
