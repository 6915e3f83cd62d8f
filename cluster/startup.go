package cluster

import (
	"fmt"
	"sort"
	"strings"
)

// startAction is what a node with an empty data dir does next.
type startAction int

const (
	// keepWaiting: not enough is known yet; probe again.
	keepWaiting startAction = iota
	// bootstrap: write the bootstrap record, bootstrap from --peers, start raft.
	bootstrap
	// waitToBeAdded: start raft empty; a running cluster adds this node
	// (or, when a peer vouched, already counts it and brings it the log).
	waitToBeAdded
	// refuse: starting could cost acknowledged writes; Open fails.
	refuse
)

func (a startAction) String() string {
	return [...]string{"keep waiting", "bootstrap", "wait to be added", "refuse"}[a]
}

// startDecision is decideStart's verdict.
type startDecision struct {
	Action startAction
	// Peer is the peer the verdict rests on (refuse: the one that still
	// counts this node as a voter; waitToBeAdded: the one that vouched, or
	// one that runs the cluster without this node).
	Peer string
	// Record is the bootstrap record to store before starting raft
	// (bootstrap: the new one; waitToBeAdded: the vouching peer's).
	Record map[string]string
	// Why explains keepWaiting (for the log) or refuse (for the error).
	Why string
}

// decideStart decides, from the answers of the other peers (keyed by id;
// a peer that did not answer is absent), what an empty node does. It is a
// pure function of its inputs.
//
// The peers it weighs are the union of --peers and every answer's members
// (--peers goes stale after `ctl peers add`); n counts them and this node.
//
//   - A peer "lists" this node when its raft configuration holds it, and
//     "vouches" for it when it lists it and its bootstrap record gives this
//     node its current incarnation. The incarnation lives in raft.db with
//     the term and vote, so an empty node that still has the incarnation
//     it had when the vouching peer bootstrapped has held no raft state
//     since the cluster began: it never voted or acknowledged anything, and
//     starting it empty (the leader brings it entry 1 onward) is safe. One
//     vouch suffices, whatever other peers of the same cluster say: a peer
//     added later by `ctl peers add` has no record, and a bootstrapper may
//     have recorded an incarnation this node had before a wipe that came
//     before any state. Only a lister that neither vouches nor shares a
//     configuration with the voucher (each lists the other) makes it
//     refuse: that is another cluster, in which this node may have voted.
//   - A peer lists this node and none vouches: the data dir was wiped
//     while the node was a voter that may have voted and acknowledged
//     writes it forgot: refuse, whatever the other peers say.
//   - Nobody lists this node, without --bootstrap: wait to be added once
//     ceil(n/2) of the other peers answered. The latest committed
//     configuration that holds this node is on a majority of its members,
//     so among any ceil(n/2) of the others at least one would list it.
//     With no other peer at all there is nobody to be added by: refuse.
//   - Nobody lists this node, with --bootstrap: a peer with state runs a
//     cluster without this node (it was removed): wait to be added, once
//     ceil(n/2) answered. Otherwise bootstrap once every other peer
//     answered empty, started with --bootstrap, and proposing exactly
//     these --peers (ids and addresses): two groups of bootstrappers with
//     different --peers that share members would form two clusters.
func decideStart(bootstrapMode bool, self, incarnation string, peers []Peer, answers map[string]ProbeInfo) startDecision {
	set := map[string]bool{}
	for _, p := range peers {
		if p.ID != self {
			set[p.ID] = true
		}
	}
	for _, a := range answers {
		for id := range a.Members {
			if id != self {
				set[id] = true
			}
		}
	}
	others := make([]string, 0, len(set))
	for id := range set {
		others = append(others, id)
	}
	sort.Strings(others)
	if len(others) == 0 {
		if bootstrapMode {
			return startDecision{Action: bootstrap, Record: map[string]string{self: incarnation}}
		}
		return startDecision{Action: refuse, Why: fmt.Sprintf("--peers lists only this node %s, so no running cluster can add it: "+
			"start it with --bootstrap to form a new cluster of one, or give the running cluster's members as --peers", self)}
	}
	n := len(others) + 1
	need := min((n+1)/2, len(others)) // ceil(n/2) of the others
	var missing, withState, emptyNotWaiting, vouchers, nonVouchers []string
	for _, id := range others {
		a, ok := answers[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		if a.lists(self) {
			if a.HasState && a.Bootstrap[self] == incarnation {
				vouchers = append(vouchers, id)
			} else {
				nonVouchers = append(nonVouchers, id)
			}
		}
		switch {
		case a.HasState:
			withState = append(withState, id)
		case !a.WaitingToBootstrap:
			emptyNotWaiting = append(emptyNotWaiting, id)
		}
	}
	answered := len(others) - len(missing)
	if len(vouchers) > 0 {
		v := vouchers[0]
		for _, x := range nonVouchers {
			if !answers[x].lists(v) || !answers[v].lists(x) {
				return startDecision{Action: refuse, Peer: x}
			}
		}
		return startDecision{Action: waitToBeAdded, Peer: v, Record: copyRecord(answers[v].Bootstrap)}
	}
	if len(nonVouchers) > 0 {
		return startDecision{Action: refuse, Peer: nonVouchers[0]}
	}
	if !bootstrapMode || len(withState) > 0 {
		if answered >= need {
			d := startDecision{Action: waitToBeAdded}
			if len(withState) > 0 {
				d.Peer = withState[0]
			}
			return d
		}
		why := fmt.Sprintf("waiting for %d of the peers %s to answer (no answer yet from %s)", need, strings.Join(others, ", "), strings.Join(missing, ", "))
		if len(withState) > 0 {
			why = strings.Join(withState, ", ") + " already form a cluster without this node; " + why
		}
		return startDecision{Action: keepWaiting, Why: why}
	}
	var whys []string
	if len(missing) > 0 {
		whys = append(whys, "no answer yet from "+strings.Join(missing, ", "))
	}
	if len(emptyNotWaiting) > 0 {
		whys = append(whys, strings.Join(emptyNotWaiting, ", ")+" answered with an empty data dir but without --bootstrap")
	}
	mine := proposal(peers)
	for _, id := range others {
		if a, ok := answers[id]; ok && a.WaitingToBootstrap && !sameProposal(a.Proposed, mine) {
			whys = append(whys, fmt.Sprintf("peer %s proposes the peers %s but this node's --peers are %s (give every bootstrapping node the same --peers)",
				id, formatProposal(a.Proposed), formatProposal(mine)))
		}
	}
	if len(whys) > 0 {
		return startDecision{Action: keepWaiting, Why: "waiting for every peer to answer empty, with --bootstrap and the same --peers, before bootstrapping: " + strings.Join(whys, "; ")}
	}
	rec := map[string]string{self: incarnation}
	for _, id := range others {
		rec[id] = answers[id].Incarnation
	}
	return startDecision{Action: bootstrap, Record: rec}
}

// proposal is peers as the id → raft address map a bootstrapping node
// proposes in its probe answers.
func proposal(peers []Peer) map[string]string {
	out := make(map[string]string, len(peers))
	for _, p := range peers {
		out[p.ID] = p.RaftAddr
	}
	return out
}

func sameProposal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for id, addr := range a {
		if other, ok := b[id]; !ok || other != addr {
			return false
		}
	}
	return true
}

// formatProposal prints a proposal as id=addr,... sorted by id ("none" if empty).
func formatProposal(p map[string]string) string {
	if len(p) == 0 {
		return "none"
	}
	ids := make([]string, 0, len(p))
	for id := range p {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for i, id := range ids {
		ids[i] = id + "=" + p[id]
	}
	return strings.Join(ids, ",")
}

func copyRecord(rec map[string]string) map[string]string {
	out := make(map[string]string, len(rec))
	for k, v := range rec {
		out[k] = v
	}
	return out
}
