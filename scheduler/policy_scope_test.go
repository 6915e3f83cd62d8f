package scheduler

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestPolicyScope: routine detection sees neither excluded servers nor the
// volumes on them nor those of collections not allowed; a repair may read
// from an excluded server but not write to one; a routine plan may touch
// none.
func TestPolicyScope(t *testing.T) {
	s1 := &seaweed.Server{ID: "s1", DataCenter: "dc1", Rack: "r1"}
	s2 := &seaweed.Server{ID: "s2", DataCenter: "dc1", Rack: "r2"}
	s3 := &seaweed.Server{ID: "s3", DataCenter: "dc2", Rack: "r1"}
	topo := &seaweed.Topology{Servers: []*seaweed.Server{s1, s2, s3}, Volumes: map[uint32]*seaweed.Volume{
		1: {ID: 1, Collection: "a", Replicas: []seaweed.Replica{{Server: s1}}},
		2: {ID: 2, Collection: "a", Replicas: []seaweed.Replica{{Server: s2}, {Server: s3}}},
		3: {ID: 3, Collection: "tmp", Replicas: []seaweed.Replica{{Server: s1}}},
	}, EcVolumes: map[uint32]*seaweed.EcVolume{4: {ID: 4, Shards: map[uint32][]string{0: {"s1"}, 1: {"s3"}}}}}
	p := &fsmpb.Policy{ExcludeRacks: []string{"dc2/r1"}, ExcludeCollections: []string{"tmp"}}
	d := DetectionTopology(topo, p)
	if len(d.Servers) != 2 || d.Volumes[1] == nil || d.Volumes[2] != nil || d.Volumes[3] != nil || d.EcVolumes[4] != nil {
		t.Fatalf("detection view: servers %v volumes %v ec %v", d.Servers, d.Volumes, d.EcVolumes)
	}
	if DetectionTopology(topo, &fsmpb.Policy{}) != topo {
		t.Fatal("no exclusions: the topology itself is not used")
	}
	touched := TouchedServers(topo, 2, []string{"s1"})
	if got := Excluded(p, topo, capBalance, touched, []string{"s1"}); got != "s3" {
		t.Fatalf("routine touching s3: excluded %q", got)
	}
	if got := Excluded(p, topo, fsmpb.TaskType_TASK_TYPE_REPLICATE, touched, []string{"s1"}); got != "" {
		t.Fatalf("repair reading from s3, writing to s1: excluded %q", got)
	}
	if got := Excluded(p, topo, fsmpb.TaskType_TASK_TYPE_REPLICATE, touched, []string{"s3"}); got != "s3" {
		t.Fatalf("repair writing to s3: excluded %q", got)
	}
	if pt := PlanningTopology(topo, p); len(pt.Servers) != 2 || pt.Volumes[2] == nil {
		t.Fatalf("planning view: servers %v volumes %v", pt.Servers, pt.Volumes)
	}
	load := map[string]int{}
	ExcludedLoad(load, topo, p)
	if load["s3"] == 0 || load["s1"] != 0 {
		t.Fatalf("load %v", load)
	}
	if !CollectionAllowed(&fsmpb.Policy{IncludeCollections: []string{""}}, "") || CollectionAllowed(&fsmpb.Policy{IncludeCollections: []string{"a"}}, "") {
		t.Fatal("include list")
	}
}

// TestPolicyThresholds: the policy's thresholds replace the flags' one by
// one; unset ones keep the flags'.
func TestPolicyThresholds(t *testing.T) {
	flags := DefaultThresholds()
	zero := int64(0)
	ratio := 0.5
	got := PolicyThresholds(&fsmpb.Policy{Thresholds: &fsmpb.PolicyThresholds{VacuumGarbageRatio: &ratio, RepairAfterSeconds: &zero}}, flags)
	want := flags
	want.VacuumGarbage, want.RepairAfter = 0.5, 0
	if got != want {
		t.Fatalf("got %+v; want %+v", got, want)
	}
}
