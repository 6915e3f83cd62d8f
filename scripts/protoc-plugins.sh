#!/usr/bin/env bash
# Prints a directory holding protoc-gen-go and protoc-gen-go-grpc at the
# pinned versions (the ones the committed fsm/fsmpb and rpc/pb code was
# generated with), installing them once into a cache. `make proto` puts it first on PATH;
# `make check` regenerates with it and compares. protoc itself comes from
# Debian's protobuf-compiler (v3.21.12).
set -euo pipefail
go_version=v1.36.12
grpc_version=v1.6.2
cache="${GROUNDSKEEPER_CACHE:-$HOME/.cache/groundskeeper}"
dir="$cache/protoc-plugins-go$go_version-grpc$grpc_version"
if [ ! -x "$dir/protoc-gen-go" ] || [ ! -x "$dir/protoc-gen-go-grpc" ]; then
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/protoc-plugins-install.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  echo "protoc-plugins.sh: installing protoc-gen-go $go_version and protoc-gen-go-grpc $grpc_version (cached in $dir)" >&2
  # Outside any module, so no go.mod (ours or a parent's) takes part.
  (cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS= go install "google.golang.org/protobuf/cmd/protoc-gen-go@$go_version" \
    && GOBIN="$tmp/bin" GOFLAGS= go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$grpc_version") >&2
  rm -rf "$dir"
  mv "$tmp/bin" "$dir"
fi
echo "$dir"
