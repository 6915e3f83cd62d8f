#!/usr/bin/env bash
# Prints the path of a staticcheck binary at the pinned version, installing
# it once into a cache (under a minute cold on 2 cores) unless STATICCHECK_BIN
# already names one. `go install pkg@version` builds it with its own go.mod:
# this module's go.mod is neither read nor changed. Bump the version together
# with the Go toolchain (v0.8.2 is the release for go1.26).
set -euo pipefail
version=v0.8.2
if [ -n "${STATICCHECK_BIN:-}" ] && [ -x "$STATICCHECK_BIN" ]; then
  echo "$STATICCHECK_BIN"; exit 0
fi
cache="${GROUNDSKEEPER_CACHE:-$HOME/.cache/groundskeeper}"
bin="$cache/staticcheck-$version"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/staticcheck-install.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  echo "staticcheck.sh: installing staticcheck $version (cached at $bin)" >&2
  # Outside any module, so no go.mod (ours or a parent's) takes part.
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS= go install "honnef.co/go/tools/cmd/staticcheck@$version") >&2
  mv "$tmp/staticcheck" "$bin"
fi
echo "$bin"
