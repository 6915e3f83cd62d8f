# Regenerate the committed protobuf code: needs protoc (Debian: protobuf-compiler,
# v3.21.12); the Go plugins at their pinned versions are installed into
# ~/.cache/groundskeeper by scripts/protoc-plugins.sh. OUT is where the
# generated files go (make check regenerates into a temporary copy).
PROTO_DIR := rpc/proto
OUT := .

.PHONY: proto tools test check check-imports

tools:
	./scripts/protoc-plugins.sh

proto:
	PATH="$$(./scripts/protoc-plugins.sh):$$PATH" protoc -I $(PROTO_DIR) \
		--go_out=$(OUT) --go_opt=module=github.com/groundskeeper-dev/groundskeeper \
		--go-grpc_out=$(OUT) --go-grpc_opt=module=github.com/groundskeeper-dev/groundskeeper \
		$(PROTO_DIR)/groundskeeper/v1/*.proto

# gofmt, go vet, staticcheck, protobuf regenerate-and-diff, go mod tidy diff
# and the import rule; every step runs, the failures are listed at the end.
check:
	./scripts/check.sh

# fsm, scheduler, worker (and capacity) must not link hashicorp/raft.
check-imports:
	./scripts/check.sh imports

test:
	./scripts/test.sh
