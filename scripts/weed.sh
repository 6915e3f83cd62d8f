#!/usr/bin/env bash
# Prints the path of a SeaweedFS `weed` binary at the version pinned in
# tools/weed/go.mod, building it once into a cache (about 6 minutes cold on
# 2 cores) unless WEED_BIN already names one.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "${WEED_BIN:-}" ] && [ -x "$WEED_BIN" ]; then
  echo "$WEED_BIN"; exit 0
fi
version=$(awk '$1=="github.com/seaweedfs/seaweedfs" {print $2} $1=="require" && $2=="github.com/seaweedfs/seaweedfs" {print $3}' "$root/tools/weed/go.mod" | head -n1)
[ -n "$version" ] || { echo "weed.sh: no seaweedfs version in tools/weed/go.mod" >&2; exit 1; }
cache="${GROUNDSKEEPER_CACHE:-$HOME/.cache/groundskeeper}"
bin="$cache/weed-$version"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  echo "weed.sh: building weed $version (cached at $bin)" >&2
  (cd "$root/tools/weed" && go build -o "$bin.tmp" github.com/seaweedfs/seaweedfs/weed) >&2
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
