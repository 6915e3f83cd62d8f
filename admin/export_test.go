package admin

import (
	"context"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
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

// Services, for this package's tests only, lists the services node n's
// gRPC server registered, by name, with their methods.
func Services(n *Node) map[string][]string {
	out := map[string][]string{}
	for name, info := range n.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			out[name] = append(out[name], m.Name)
		}
	}
	return out
}

// SetHelloTimeout, for this package's tests only, sets how long node n
// waits for a new worker session's hello (rpc.StreamLimits.HelloTimeout).
func SetHelloTimeout(n *Node, d time.Duration) {
	l := rpc.DefaultStreamLimits()
	l.HelloTimeout = d
	n.server.SetStreamLimits(l)
}
