#!/usr/bin/env bash
# Prints the path of a grpcurl binary at the pinned version, installing it
# once into a cache (about a minute cold on 2 cores) unless GRPCURL_BIN
# already names one. `go install pkg@version` builds grpcurl with its own
# go.mod: this module's go.mod is neither read nor changed.
set -euo pipefail
version=v1.9.3
if [ -n "${GRPCURL_BIN:-}" ] && [ -x "$GRPCURL_BIN" ]; then
  echo "$GRPCURL_BIN"; exit 0
fi
cache="${GROUNDSKEEPER_CACHE:-$HOME/.cache/groundskeeper}"
bin="$cache/grpcurl-$version"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/grpcurl-install.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  echo "grpcurl.sh: installing grpcurl $version (cached at $bin)" >&2
  # Outside any module, so no go.mod (ours or a parent's) takes part.
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS= go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$version") >&2
  mv "$tmp/grpcurl" "$bin"
fi
echo "$bin"
