#!/usr/bin/env bash
# Prints the path of a grpcurl binary at the pinned version, installing it
# once into a cache (about a minute cold on 2 cores) unless GRPCURL_BIN
# already names one (see gotool.sh).
set -euo pipefail
exec "$(dirname "$0")/gotool.sh" grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl v1.9.3 GRPCURL_BIN
