# Regenerate the committed protobuf code: needs protoc (Debian: protobuf-compiler,
# v3.21.12); the Go plugins at their pinned versions are installed into
# ~/.cache/groundskeeper by scripts/protoc-plugins.sh. OUT is where the
# generated files go (make check regenerates into a temporary copy).
# Each .proto lives beside what owns it: the replicated-state schema
# (command.proto, state.proto -> fsm/fsmpb) under fsm/proto, the gRPC API
# (admin, oracle, worker -> rpc/pb) under rpc/proto. Both directories are
# include roots, so every file keeps its import path groundskeeper/v1/*.proto
# (and its descriptor name: the registry and the wire see no move).
PROTO_DIRS := fsm/proto rpc/proto
PROTO_FILES := $(foreach d,$(PROTO_DIRS),$(wildcard $(d)/groundskeeper/v1/*.proto))
OUT := .

.PHONY: proto proto-files tools test check check-imports

tools:
	./scripts/protoc-plugins.sh

proto:
	PATH="$$(./scripts/protoc-plugins.sh):$$PATH" protoc $(addprefix -I ,$(PROTO_DIRS)) \
		--go_out=$(OUT) --go_opt=module=github.com/groundskeeper-dev/groundskeeper \
		--go-grpc_out=$(OUT) --go-grpc_opt=module=github.com/groundskeeper-dev/groundskeeper \
		$(PROTO_FILES)

# The .proto files `make proto` compiles, one a line (make check compares
# them with the committed ones).
proto-files:
	@printf '%s\n' $(PROTO_FILES)

# gofmt, go vet, staticcheck, protobuf regenerate-and-diff, go mod tidy diff
# and the import rule; every step runs, the failures are listed at the end.
check:
	./scripts/check.sh

# fsm, scheduler, worker (and capacity) must not link hashicorp/raft; fsm
# must not link rpc or rpc/pb.
check-imports:
	./scripts/check.sh imports

test:
	./scripts/test.sh
