#!/usr/bin/env bash
# The project's test command (README "Test"), with the race detector on (the
# cluster, rpc and integration packages are concurrent).
#
#   scripts/test.sh         everything: vet, the quick tier, then the
#                           integration tests (real groundskeeper processes,
#                           real SeaweedFS; about 11 minutes on 2 cores)
#   scripts/test.sh quick   the unit, property and in-process tests: every
#                           package but ./integration/... (under 3 minutes)
#
# `make check` (scripts/check.sh) runs gofmt, vet, staticcheck and the other
# static checks; CI (.ci/run) runs it first.
set -euo pipefail
cd "$(dirname "$0")/.."

tier="${1:-full}"
case "$tier" in
  quick|full) ;;
  *) echo "test.sh: unknown tier \"$tier\" (want quick, or nothing for everything)" >&2; exit 2 ;;
esac

# Every package outside ./integration/... (go list keeps this current as
# packages move).
mapfile -t quick_pkgs < <(go list ./... | grep -v '/integration\($\|/\)')

if [ "$tier" = quick ]; then
  echo "== unit, property and in-process cluster tests (race detector on)"
  exec go test -race -count=1 "${quick_pkgs[@]}"
fi

echo "== go vet"
go vet ./...

echo "== unit, property and in-process cluster tests (race detector on)"
go test -race -count=1 "${quick_pkgs[@]}"

echo "== SeaweedFS weed binary for the integration tests (built once, then cached)"
WEED_BIN="$(./scripts/weed.sh)"
export WEED_BIN
echo "$WEED_BIN"

echo "== grpcurl for the capacity oracle test (installed once, then cached)"
GRPCURL_BIN="$(./scripts/grpcurl.sh)"
export GRPCURL_BIN
echo "$GRPCURL_BIN"

echo "== integration tests: real groundskeeper processes (built with -race), real SeaweedFS"
go test -race -count=1 -timeout 30m ./integration/...
