#!/usr/bin/env bash
# The project's test command (README "Test"), with the race detector on (the
# cluster, rpc and integration packages are concurrent).
#
#   scripts/test.sh         everything: vet, the quick tier, a short run of
#                           every fuzz target (GK_FUZZ_TIME, 100000 inputs each), then
#                           the integration tests (real groundskeeper
#                           processes, real SeaweedFS)
#   scripts/test.sh quick   the unit, property and in-process tests: every
#                           package but ./integration/... (about 3.5 minutes)
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

echo "== fuzz targets, ${GK_FUZZ_TIME:=100000x} each (GK_FUZZ_TIME=5000000x, or a duration such as 5m, for a longer search)"
# Every Fuzz function of every package; go test fuzzes one target per run.
# The default budget is a count of inputs, not a duration: with a duration,
# Go 1.26's fuzz coordinator can report its own end-of-time deadline as a
# failure ("context deadline exceeded", no failing input; golang/go#75804,
# fixed in Go 1.27). A count has no deadline to race. An input that hangs is
# still caught by -timeout.
while read -r dir name; do
  if ! out="$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$GK_FUZZ_TIME" -timeout 10m "./$dir/" 2>&1)"; then
    printf '%s\n' "$out"
    echo "fuzz target $name in ./$dir failed: its input is saved under ./$dir/testdata/fuzz/$name (commit it as a regression seed once fixed)" >&2
    exit 1
  fi
  echo "$name: $(printf '%s\n' "$out" | tail -1)"
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | grep -v '^./integration/' |
  sed -E 's#^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)$#\1 \2#' | sort -u)

echo "== SeaweedFS weed binary for the integration tests (built once, then cached)"
WEED_BIN="$(./scripts/weed.sh)"
export WEED_BIN
echo "$WEED_BIN"

echo "== grpcurl for the capacity oracle test (installed once, then cached)"
GRPCURL_BIN="$(./scripts/grpcurl.sh)"
export GRPCURL_BIN
echo "$GRPCURL_BIN"

echo "== integration tests: real groundskeeper processes (built with -race), real SeaweedFS"
# The randomized fault harness (TestRandomizedFaults) runs 100 rounds with a
# fresh seed here, about 5 s a round; GK_FAULT_ROUNDS=1000 for a long run.
export GK_FAULT_ROUNDS="${GK_FAULT_ROUNDS:-100}"
go test -race -count=1 -timeout 60m ./integration/...
