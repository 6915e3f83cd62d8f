#!/usr/bin/env bash
# Prints the path of a staticcheck binary at the pinned version, installing
# it once into a cache (under a minute cold on 2 cores) unless STATICCHECK_BIN
# already names one (see gotool.sh). Bump the version together with the Go
# toolchain (v0.8.2 is the release for go1.26).
set -euo pipefail
exec "$(dirname "$0")/gotool.sh" staticcheck honnef.co/go/tools/cmd/staticcheck v0.8.2 STATICCHECK_BIN
