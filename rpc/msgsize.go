package rpc

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// Message sizes. The server refuses any message above MaxRequestMessage
// before decoding it, then each method's own limit (methodLimits) after;
// the forwarding and ctl clients are told the same (CallLimits).
const (
	// SnapshotChunkSize is the data of one snapshot stream message, on
	// both the save and the restore side.
	SnapshotChunkSize = 64 << 10
	// MaxRequestMessage is the largest message the server decodes at all:
	// a follower's ApplyBatch, which the forwarder keeps below
	// maxForwardBytes.
	MaxRequestMessage = 8 << 20
	// MaxResponseMessage is the largest message the server sends and the
	// clients accept: a page of tasks, the workers, an oracle answer.
	MaxResponseMessage = 64 << 20
	// maxSmallRequest is the limit of every method not in methodLimits:
	// an operator's call or a read, which carries a few ids and strings.
	maxSmallRequest = 64 << 10
)

// methodLimits are the methods whose messages may be larger than
// maxSmallRequest, with their limit.
var methodLimits = map[string]int{
	pb.Admin_RestoreSnapshot_FullMethodName:            SnapshotChunkSize + 4<<10,
	pb.Internal_ApplyBatch_FullMethodName:              MaxRequestMessage,
	pb.WorkerService_Session_FullMethodName:            1 << 20,
	pb.CapacityOracle_GetVolumeCapacity_FullMethodName: 4 << 20,
	pb.CapacityOracle_GetServerCapacity_FullMethodName: 4 << 20,
	pb.CapacityOracle_WatchCapacity_FullMethodName:     4 << 20,
}

// MethodLimit is the largest message, in bytes, a client may send to
// method (a full gRPC method name).
func MethodLimit(method string) int {
	if n, ok := methodLimits[method]; ok {
		return n
	}
	return maxSmallRequest
}

// ServerOptions are the message size limits every admin gRPC server uses:
// nothing above MaxRequestMessage is decoded, and each method's messages
// are held to MethodLimit.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxRequestMessage), grpc.MaxSendMsgSize(MaxResponseMessage),
		grpc.ChainUnaryInterceptor(LimitUnary), grpc.ChainStreamInterceptor(LimitStream),
	}
}

// CallLimits tells a client of the admins the server's message limits, so
// that it refuses to send what the server would refuse and accepts every
// answer the server may send.
func CallLimits() grpc.DialOption {
	return grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(MaxRequestMessage), grpc.MaxCallRecvMsgSize(MaxResponseMessage))
}

func tooLarge(method string, size, limit int) error {
	return status.Errorf(codes.ResourceExhausted, "a %s message of %d bytes is larger than the %d bytes that method accepts", method, size, limit)
}

// LimitUnary holds a unary call's request to its method's limit.
func LimitUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if limit := MethodLimit(info.FullMethod); limit < MaxRequestMessage {
			if n := proto.Size(m); n > limit {
				return nil, tooLarge(info.FullMethod, n, limit)
			}
		}
	}
	return handler(ctx, req)
}

// LimitStream holds every message a client streams to its method's limit.
func LimitStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	limit := MethodLimit(info.FullMethod)
	if limit >= MaxRequestMessage {
		return handler(srv, ss)
	}
	return handler(srv, &limitedStream{ServerStream: ss, method: info.FullMethod, limit: limit})
}

// limitedStream holds every received message of a stream to its method's
// limit.
type limitedStream struct {
	grpc.ServerStream
	method string
	limit  int
}

func (s *limitedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if pm, ok := m.(proto.Message); ok {
		if n := proto.Size(pm); n > s.limit {
			return tooLarge(s.method, n, s.limit)
		}
	}
	return nil
}
