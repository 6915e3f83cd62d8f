package admin

import (
	"context"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// Propose, for this package's tests only, proposes cmd on node n as its
// scheduler does: never forwarded, refused unless n leads, written in the
// command version every member agreed on.
func Propose(ctx context.Context, n *Node, cmd *fsmpb.Command) (*fsmpb.ApplyResult, error) {
	return localApplier{n}.Apply(ctx, cmd)
}

// AgreedVersion, for this package's tests only, is the command version
// leader n writes in (localApplier's gate).
func AgreedVersion(n *Node) uint32 { return n.agreedVersion() }
