package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// sharedPollMaster answers from a poll that began at began (before the
// call), as the node's topology cache does for a fetch that joins one.
type sharedPollMaster struct {
	Master // unused methods
	began  time.Time
	topo   *seaweed.Topology
}

func (m sharedPollMaster) Topology(context.Context) (*seaweed.Topology, error) { return m.topo, nil }

func (m sharedPollMaster) TopologyAsked(context.Context) (*seaweed.Topology, time.Time, error) {
	return m.topo, m.began, nil
}

// A topology from a shared poll is as old as that poll, not as the call:
// planning must not take it for one asked after a task submitted meanwhile.
func TestAskTopologyUsesThePollsStart(t *testing.T) {
	began := now.Add(-3 * time.Second)
	m := sharedPollMaster{began: began, topo: &seaweed.Topology{}}
	s := &Scheduler{master: m, cfg: Config{Now: func() time.Time { return now }}}
	topo, asked, err := s.askTopology(context.Background())
	if err != nil || topo != m.topo || !asked.Equal(began) {
		t.Fatalf("askTopology = %v, %v, %v; want the topology, asked at the poll's start %v", topo, asked, err, began)
	}
}
