#!/usr/bin/env bash
# Usage: gotool.sh NAME PACKAGE VERSION ENV_VAR
# Prints the path of the Go tool NAME (built from PACKAGE@VERSION),
# installing it once into a cache (about a minute cold on 2 cores) unless
# the environment variable ENV_VAR already names an executable. `go install
# pkg@version` builds the tool with its own go.mod: this module's go.mod is
# neither read nor changed. grpcurl.sh and staticcheck.sh pin their tools
# through it.
set -euo pipefail
if [ $# -ne 4 ]; then
  echo "usage: gotool.sh NAME PACKAGE VERSION ENV_VAR" >&2; exit 2
fi
name=$1 pkg=$2 version=$3 override=${!4:-}
if [ -n "$override" ] && [ -x "$override" ]; then
  echo "$override"; exit 0
fi
cache="${GROUNDSKEEPER_CACHE:-$HOME/.cache/groundskeeper}"
bin="$cache/$name-$version"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/$name-install.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  echo "$name.sh: installing $name $version (cached at $bin)" >&2
  # Outside any module, so no go.mod (ours or a parent's) takes part.
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS= go install "$pkg@$version") >&2
  mv "$tmp/$name" "$bin"
fi
echo "$bin"
