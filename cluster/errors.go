package cluster

import (
	"errors"
	"fmt"
)

// ErrNotLeader means this node cannot apply or serve a linearizable read
// because it is not the leader. Check it with errors.Is; the concrete
// *NotLeaderError says who the leader is, if known.
var ErrNotLeader = errors.New("not the leader")

// ErrOutcomeUnknown means leadership was lost after the command was handed to
// raft: it may or may not have been committed.
var ErrOutcomeUnknown = errors.New("leadership lost while applying; outcome unknown")

// ErrNotReady means this node leads but has not yet applied everything
// committed by earlier terms.
var ErrNotReady = errors.New("leader is still catching up after election")

// NotLeaderError carries the current leader, if this node knows it.
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "not the leader, and no leader is known"
	}
	return fmt.Sprintf("not the leader (leader is %s at %s)", e.LeaderID, e.LeaderAddr)
}

func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// ErrVersionNotAgreed means the leader refused to write a command in a
// version some member of the configuration does not apply (yet).
var ErrVersionNotAgreed = errors.New("command version not applied by every member")

// ErrJoinTooOld means a node may not join: it does not apply a command
// version the cluster has already written.
var ErrJoinTooOld = errors.New("node does not apply the cluster's command versions")
