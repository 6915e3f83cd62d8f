#!/usr/bin/env bash
# The project's test command (README "Test"): vet, then every package's tests,
# with the race detector on (the cluster, rpc and integration packages are
# concurrent). Integration tests start real groundskeeper processes.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== go vet"
go vet ./...

echo "== unit, property and in-process cluster tests (race detector on)"
go test -race -count=1 ./fsm/... ./cluster/... ./rpc/... ./cmd/...

echo "== integration tests against real groundskeeper processes"
go test -race -count=1 -timeout 20m ./integration/...
