#!/usr/bin/env bash
# The project's machine-checked habits (`make check`, run by .ci/run before
# the tests): gofmt, go vet, staticcheck (pinned), the committed protobuf code
# equals what the .proto files generate, go.mod/go.sum are tidy, and the
# import rules (fsm, scheduler, worker, capacity and placement do not link
# hashicorp/raft: raft stays in cluster; fsm does not link rpc or rpc/pb: the
# replicated state does not depend on the API; capacity and placement do not
# link the scheduler: they sit below it; certs links no package of ours and
# not raft: every listener and dialer shares it). Every step runs; the failed ones are
# listed at the end. `scripts/check.sh STEP...` runs only the named steps
# (gofmt vet staticcheck proto tidy imports).
set -uo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

step_gofmt() {
  local out
  out="$(gofmt -l .)" || return 1
  if [ -n "$out" ]; then
    echo "$out"
    echo "these files are not gofmt-formatted: run \`gofmt -w .\`"
    return 1
  fi
}

step_vet() {
  go vet ./...
}

step_staticcheck() {
  local bin
  bin="$(./scripts/staticcheck.sh)" || return 1
  "$bin" ./...
}

step_proto() {
  if ! command -v protoc >/dev/null; then
    echo "protoc is missing: install Debian's protobuf-compiler (apt-get install protobuf-compiler, v3.21.12)"
    return 1
  fi
  local tmp rc=0 f rel
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" RETURN
  # Every committed .proto must be one `make proto` compiles (a file outside
  # the Makefile's PROTO_DIRS would silently generate nothing).
  while IFS= read -r rel; do
    echo "$rel is committed but \`make proto\` does not compile it (add its include root to PROTO_DIRS in the Makefile)"
    rc=1
  done < <(comm -23 <(git ls-files '*.proto' | sort) <(make -s proto-files | sort))
  make -s proto OUT="$tmp" || return 1
  # Every generated file (fsm/fsmpb and rpc/pb alike) must be committed
  # unchanged, and every committed *.pb.go must still be generated.
  while IFS= read -r f; do
    rel="${f#"$tmp"/}"
    if ! cmp -s "$f" "$root/$rel"; then
      echo "$rel differs from what protoc generates"
      rc=1
    fi
  done < <(find "$tmp" -type f | sort)
  while IFS= read -r rel; do
    if [ ! -f "$tmp/$rel" ]; then
      echo "$rel is committed but no .proto file generates it"
      rc=1
    fi
  done < <(git ls-files '*.pb.go')
  if [ "$rc" -ne 0 ]; then
    echo "the committed protobuf code is not what the .proto files generate (protoc $(protoc --version | awk '{print $2}')): run \`make proto\` and commit the result"
  fi
  return "$rc"
}

step_tidy() {
  if ! go mod tidy -diff; then
    echo "go.mod or go.sum is not tidy: run \`go mod tidy\` and commit the result"
    return 1
  fi
}

# forbid_imports PKG TEST WHY: fails, printing WHY and the offending imports,
# when a package in PKG's dependency graph imports a path $i for which the awk
# condition TEST holds (or when go list fails).
forbid_imports() {
  local bad
  bad="$(go list -deps -f '{{.ImportPath}}{{range .Imports}} {{.}}{{end}}' "$1" |
    awk '{for (i = 2; i <= NF; i++) if ('"$2"') print "  " $1 " imports " $i}')" || return 1
  [ -z "$bad" ] && return 0
  echo "$3"
  echo "$bad"
  return 1
}

step_imports() {
  local pkgs=(./fsm ./scheduler ./worker) p rc=0
  [ -d capacity ] && pkgs+=(./capacity)
  [ -d placement ] && pkgs+=(./placement)
  for p in "${pkgs[@]}"; do
    forbid_imports "$p" '$i ~ /^github\.com\/hashicorp\/raft($|[-\/])/' \
      "${p#./} links github.com/hashicorp/raft; raft stays in cluster (move the code that needs it there):" || rc=1
  done
  # The replicated state does not depend on the API: fsm and its schema
  # (fsm/fsmpb) link neither the gRPC layer nor its generated code.
  forbid_imports ./fsm '$i ~ /^github\.com\/groundskeeper-dev\/groundskeeper\/rpc($|\/)/' \
    "fsm links the gRPC layer; the replicated state's types are fsm/fsmpb's (run \`go run ./tools/pbsplit\`):" || rc=1
  # capacity and placement sit below the scheduler: the oracle must not link
  # the leader's scheduling loops (the placement both need is package
  # placement's).
  for p in ./capacity ./placement; do
    [ -d "$p" ] || continue
    forbid_imports "$p" '$i == "github.com/groundskeeper-dev/groundskeeper/scheduler"' \
      "${p#./} links the scheduler; it must sit below it (move what both need to placement):" || rc=1
  done
  # certs is the TLS layer under every listener and dialer (gRPC, raft, the
  # SeaweedFS clients): it knows no service, state or raft, so it links no
  # package of this module and not hashicorp/raft.
  forbid_imports ./certs '$i ~ /^github\.com\/(groundskeeper-dev\/groundskeeper|hashicorp\/raft)($|[-\/])/' \
    "certs links the project's packages or raft; it must stay below every listener (pass what it needs in):" || rc=1
  return "$rc"
}

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(gofmt vet staticcheck proto tidy imports)
failed=()
for s in "${steps[@]}"; do
  if ! declare -F "step_$s" >/dev/null; then
    echo "check.sh: unknown step $s (the steps are gofmt vet staticcheck proto tidy imports)" >&2
    exit 2
  fi
  echo "== check: $s"
  if ! "step_$s"; then
    failed+=("$s")
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "check FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "check: all passed"
