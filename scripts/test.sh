#!/usr/bin/env bash
# The project's test command (README "Test"): vet, then every package's tests,
# with the race detector on (the cluster, rpc and integration packages are
# concurrent). Integration tests start real groundskeeper processes.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== go vet"
go vet ./...

echo "== unit, property and in-process cluster tests (race detector on)"
go test -race -count=1 ./fsm/... ./cluster/... ./rpc/... ./scheduler/... ./worker/... ./seaweed/... ./cmd/...

echo "== SeaweedFS weed binary for the integration tests (built once, then cached)"
WEED_BIN="$(./scripts/weed.sh)"
export WEED_BIN
echo "$WEED_BIN"

echo "== grpcurl for the capacity oracle test (installed once, then cached)"
GRPCURL_BIN="$(./scripts/grpcurl.sh)"
export GRPCURL_BIN
echo "$GRPCURL_BIN"

echo "== integration tests: real groundskeeper processes, real SeaweedFS"
go test -race -count=1 -timeout 30m ./integration/...
