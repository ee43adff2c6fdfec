#!/usr/bin/env bash
# make demo: a whole release and a rollback on this machine. Builds the demo
# program and runs it; it starts (or reuses) the local cluster in .cluster/,
# runs serin, podsim and Prometheus there, and leaves them running.
# `make cluster-down` stops everything.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
go build -o bin/serin-demo ./integration/demo
exec bin/serin-demo -dir "${CLUSTER_DIR:-$ROOT/.cluster}" -bin "$ROOT/bin" "$@"
