package rpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// toStatus maps internal errors onto gRPC status codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var fe *fsm.Error
	switch {
	case errors.As(err, &fe):
		return status.Error(fsmCode(fe.Code), fe.Msg)
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrNotReady):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, cluster.ErrOutcomeUnknown):
		return status.Error(codes.Unavailable, err.Error())
	case errors.As(err, new(*fsm.HaltedError)):
		// This node stopped applying; the others go on: ask another.
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, cluster.ErrVersionNotAgreed), errors.Is(err, cluster.ErrJoinTooOld):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func fsmCode(c fsmpb.ErrorCode) codes.Code {
	switch c {
	case fsmpb.ErrorCode_ERROR_CODE_INVALID, fsmpb.ErrorCode_ERROR_CODE_UNKNOWN_VERSION:
		return codes.InvalidArgument
	case fsmpb.ErrorCode_ERROR_CODE_NOT_FOUND:
		return codes.NotFound
	case fsmpb.ErrorCode_ERROR_CODE_ILLEGAL_TRANSITION, fsmpb.ErrorCode_ERROR_CODE_STALE_FENCE, fsmpb.ErrorCode_ERROR_CODE_VOLUME_BUSY:
		return codes.FailedPrecondition
	case fsmpb.ErrorCode_ERROR_CODE_NOT_OWNER:
		return codes.PermissionDenied
	case fsmpb.ErrorCode_ERROR_CODE_CONFLICT:
		return codes.Aborted
	}
	return codes.Internal
}

func invalid(msg string) error { return status.Error(codes.InvalidArgument, msg) }
