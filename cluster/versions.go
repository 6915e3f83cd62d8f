package cluster

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// Versioned is the FSM's side of the command versions (the fsm package's
// FSM implements it). The node gates, in one leader-side place that
// every proposal passes through, what may be written and who may join:
//   - a command above the base version is written only once every server
//     of the configuration (voters and non-voters) advertised it applies it;
//   - a node joins only if it applies every version the cluster wrote;
//   - a server that leaves the configuration has its advertisement
//     forgotten, so an earlier life of its id never counts for it.
//
// Gated proposals and configuration changes hold one mutex, so an add
// cannot slip between the agreement check and the proposal.
type Versioned interface {
	// MaxCommandVersion is the highest command version this build applies
	// (advertised in probe answers).
	MaxCommandVersion() uint32
	// GatedVersion returns the version an encoded command is written in
	// and whether it is above the base version every build applies.
	GatedVersion(cmd []byte) (version uint32, gated bool)
	// AgreedVersion is the highest version every one of ids advertised.
	AgreedVersion(ids []string) uint32
	// WrittenVersion is the highest command version the applied state
	// reflects, and whether it is above the base version.
	WrittenVersion() (version uint32, gated bool)
	// ForgetAdmin returns the encoded command that drops what admin id
	// published (ok false: it published nothing).
	ForgetAdmin(id string) (cmd []byte, ok bool, err error)
	// Stamp returns the encoded command stamped no earlier than floor
	// (unix nanoseconds) and its stamp: the leader raises every command it
	// proposes to the newest stamp it proposed before, so stamps never go
	// back along the log.
	Stamp(cmd []byte, floor int64) ([]byte, int64, error)
}

// versioned returns the FSM's Versioned side.
func (n *Node) versioned() Versioned { return n.cfg.FSM }

// configIDs returns the ids of every server in the latest configuration.
func (n *Node) configIDs() ([]string, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	var ids []string
	for _, s := range f.Configuration().Servers {
		ids = append(ids, string(s.ID))
	}
	return ids, nil
}

// stampRaiseLimit bounds how far the leader raises a command's stamp to
// the last one it proposed: far enough for proposers that stamped and then
// waited their turn (microseconds to milliseconds), not for a clock that
// stepped back (a jump forward corrected), which would otherwise pin every
// later stamp at the wrong time until the clock caught up.
const stampRaiseLimit = time.Second

// proposeGated enqueues the commands, refusing (in errs) those written in
// a version some server of the configuration does not advertise. Commands
// of the base version are enqueued without taking the gate. A ctx that
// ended while the commands waited their turn proposes nothing.
func (n *Node) proposeGated(ctx context.Context, cmds [][]byte) ([]raft.ApplyFuture, []error) {
	futures, errs := make([]raft.ApplyFuture, len(cmds)), make([]error, len(cmds))
	v := n.versioned()
	// Stamped and enqueued under one lock, in the order raft appends them:
	// a proposer that stamped its command and then lost the CPU to another
	// that stamped and appended later would otherwise put an earlier time
	// after a later one in the log.
	n.stampMu.Lock()
	defer n.stampMu.Unlock()
	if err := ctx.Err(); err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("apply: %w", err)
		}
		return futures, errs
	}
	timeout := timeoutFrom(ctx)
	cmds = slices.Clone(cmds)
	for i, c := range cmds {
		b, now, err := v.Stamp(c, math.MinInt64) // its own stamp
		if err == nil && now >= n.lastStamp-int64(stampRaiseLimit) {
			b, now, err = v.Stamp(b, n.lastStamp)
		}
		if err != nil {
			errs[i] = fmt.Errorf("apply: %w", err)
			continue
		}
		cmds[i], n.lastStamp = b, now
	}
	versions := make([]uint32, len(cmds))
	anyGated := false
	for i, c := range cmds {
		if ver, gated := v.GatedVersion(c); gated {
			versions[i], anyGated = ver, true
		}
	}
	if !anyGated {
		for i, c := range cmds {
			if errs[i] == nil {
				futures[i] = n.raft.Apply(c, timeout)
			}
		}
		return futures, errs
	}
	n.gateMu.Lock()
	defer n.gateMu.Unlock()
	ids, err := n.configIDs()
	agreed := uint32(0)
	if err == nil {
		// Never below what is written already: checkJoin admitted no
		// server that does not apply it, and one not advertised yet
		// (being added) would otherwise count as the base version.
		written, _ := v.WrittenVersion()
		agreed = max(v.AgreedVersion(ids), min(written, v.MaxCommandVersion()))
	}
	for i, c := range cmds {
		if errs[i] != nil {
			continue
		}
		if versions[i] != 0 {
			if err != nil {
				errs[i] = err
				continue
			}
			if versions[i] > agreed {
				errs[i] = fmt.Errorf("%w: the command needs version %d and the configuration's servers all apply up to %d; retry once every member runs a build that applies it", ErrVersionNotAgreed, versions[i], agreed)
				continue
			}
			n.proposed = max(n.proposed, versions[i])
		}
		futures[i] = n.raft.Apply(c, timeout)
	}
	return futures, errs
}

// checkJoin, under gateMu, refuses a node that does not apply every
// command version the cluster wrote (or has in flight from this leader).
// It asks the node itself, on its raft port, only when something above
// the base version was written.
func (n *Node) checkJoin(ctx context.Context, id, addr string) error {
	v := n.versioned()
	written, gated := v.WrittenVersion()
	if n.proposed > written {
		written, gated = n.proposed, true
	}
	if !gated {
		return nil
	}
	info, err := n.stream.probePeer(ctx, addr)
	if err != nil {
		return fmt.Errorf("%w: cannot ask %s at %s which command versions it applies (%v); the cluster has written version %d, which every member must apply: start the node (empty, it waits to be added) and add it again", ErrJoinTooOld, id, addr, err, written)
	}
	if info.ID != id {
		return fmt.Errorf("the node at %s answers as %q, not %s", addr, info.ID, id)
	}
	if info.MaxCommandVersion < written {
		has := max(info.MaxCommandVersion, 1)
		return fmt.Errorf("%w: %s applies command versions up to %d but the cluster has written version %d: start it with a build that applies version %d, then add it", ErrJoinTooOld, id, has, written, written)
	}
	return nil
}

// forgetAdmin, leader only, commits the command that drops what admin id
// published, if it published anything.
func (n *Node) forgetAdmin(ctx context.Context, id string) error {
	v := n.versioned()
	cmd, ok, err := v.ForgetAdmin(id)
	if err != nil || !ok {
		return err
	}
	f := n.raft.Apply(cmd, timeoutFrom(ctx))
	if err := f.Error(); err != nil {
		return n.applyError(err)
	}
	if err, ok := f.Response().(error); ok {
		return err
	}
	return nil
}
