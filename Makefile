# Regenerate the committed protobuf code: needs protoc (Debian: protobuf-compiler)
# and the Go plugins installed by `make tools`.
PROTO_DIR := rpc/proto
GOBIN := $(shell go env GOPATH)/bin

.PHONY: proto tools test

tools:
	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

proto:
	PATH="$(GOBIN):$$PATH" protoc -I $(PROTO_DIR) \
		--go_out=. --go_opt=module=github.com/groundskeeper-dev/groundskeeper \
		--go-grpc_out=. --go-grpc_opt=module=github.com/groundskeeper-dev/groundskeeper \
		$(PROTO_DIR)/groundskeeper/v1/*.proto

test:
	bash .ci/test
