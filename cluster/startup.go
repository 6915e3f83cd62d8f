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
	// waitToBeAdded: start raft empty; a running cluster adds this node.
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
	// counts this node as a voter; bootstrap: the one that vouched, if any).
	Peer string
	// Record is the bootstrap record to store before bootstrapping.
	Record map[string]string
	// Why explains keepWaiting (for the log) or refuse (for the error).
	Why string
}

// decideStart decides, from the answers of the other peers (keyed by id;
// a peer that did not answer is absent), what an empty node does. It is a
// pure function of its inputs.
//
//   - A peer whose configuration lists this node, but whose bootstrap record
//     does not give this node its current incarnation, knows this node as a
//     voter that may have voted and acknowledged writes the empty data dir
//     forgot: refuse, whatever the other peers say.
//   - With --bootstrap: a peer with state that lists this node vouched for
//     this incarnation (it counted this node as fresh when it bootstrapped):
//     bootstrap identically. Every other peer empty and waiting to
//     bootstrap: bootstrap. A peer with state that does not list this node
//     (it was removed): wait to be added, once a majority answered.
//   - Without --bootstrap: wait to be added once ceil(n/2) of the other
//     peers answered (n counts this node) and none of them refused.
func decideStart(bootstrapMode bool, self, incarnation string, peers []Peer, answers map[string]ProbeInfo) startDecision {
	var others []string
	for _, p := range peers {
		if p.ID != self {
			others = append(others, p.ID)
		}
	}
	sort.Strings(others)
	n := len(others) + 1
	need := (n + 1) / 2 // ceil(n/2) of the others
	if need > len(others) {
		need = len(others)
	}
	var missing, withState, emptyNotWaiting []string
	vouch := ""
	for _, id := range others {
		a, ok := answers[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		if a.lists(self) && a.Bootstrap[self] != incarnation {
			return startDecision{Action: refuse, Peer: id}
		}
		switch {
		case a.HasState:
			withState = append(withState, id)
			if a.lists(self) && vouch == "" {
				vouch = id
			}
		case !a.WaitingToBootstrap:
			emptyNotWaiting = append(emptyNotWaiting, id)
		}
	}
	answered := len(others) - len(missing)
	if !bootstrapMode {
		if answered >= need && len(others) > 0 {
			return startDecision{Action: waitToBeAdded}
		}
		return startDecision{Action: keepWaiting, Why: fmt.Sprintf("waiting for %d of the peers to answer (no answer yet from %s)", need, strings.Join(missing, ", "))}
	}
	if vouch != "" {
		rec := answers[vouch].Bootstrap
		if !sameIDs(rec, peers) {
			return startDecision{Action: refuse, Peer: vouch, Why: fmt.Sprintf("peer %s bootstrapped the cluster %s but --peers lists %s", vouch, recordIDs(rec), peerIDs(peers))}
		}
		return startDecision{Action: bootstrap, Peer: vouch, Record: copyRecord(rec)}
	}
	if len(withState) > 0 {
		if answered >= need {
			return startDecision{Action: waitToBeAdded, Peer: withState[0]}
		}
		return startDecision{Action: keepWaiting, Why: fmt.Sprintf("%s already form a cluster without this node; waiting for %d of the peers to answer (no answer yet from %s)", strings.Join(withState, ", "), need, strings.Join(missing, ", "))}
	}
	if len(missing) > 0 {
		return startDecision{Action: keepWaiting, Why: "waiting for every peer to answer before bootstrapping (no answer yet from " + strings.Join(missing, ", ") + ")"}
	}
	if len(emptyNotWaiting) > 0 {
		return startDecision{Action: keepWaiting, Why: strings.Join(emptyNotWaiting, ", ") + " have empty data dirs but were not started with --bootstrap"}
	}
	rec := map[string]string{self: incarnation}
	for _, id := range others {
		rec[id] = answers[id].Incarnation
	}
	return startDecision{Action: bootstrap, Record: rec}
}

func sameIDs(rec map[string]string, peers []Peer) bool {
	if len(rec) != len(peers) {
		return false
	}
	for _, p := range peers {
		if _, ok := rec[p.ID]; !ok {
			return false
		}
	}
	return true
}

func recordIDs(rec map[string]string) string {
	ids := make([]string, 0, len(rec))
	for id := range rec {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

func peerIDs(peers []Peer) string {
	ids := make([]string, 0, len(peers))
	for _, p := range peers {
		ids = append(ids, p.ID)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

func copyRecord(rec map[string]string) map[string]string {
	out := make(map[string]string, len(rec))
	for k, v := range rec {
		out[k] = v
	}
	return out
}
