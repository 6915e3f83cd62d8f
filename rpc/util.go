package rpc

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
)

func isNotLeader(err error) bool {
	var nl *cluster.NotLeaderError
	return errors.As(err, &nl)
}

// peerError keeps membership refusals (unknown member, address taken) as
// FailedPrecondition with their message.
func peerError(err error) error {
	if errors.Is(err, cluster.ErrNotReady) || errors.Is(err, cluster.ErrNotLeader) {
		return toStatus(err)
	}
	return status.Error(codes.FailedPrecondition, err.Error())
}
