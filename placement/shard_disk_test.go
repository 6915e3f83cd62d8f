package placement

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestShardDisk: a shard copy names a disk only where the server's own
// choice would be of the wrong type (a type other than hdd on a server
// with disks of another type too): then the freest disk of the type with a
// free slot, above location 0, which cannot be named; a server with none
// cannot take the copy. The hdd type, a server of one disk type, and a
// master that lists no physical disks leave the choice to the server.
func TestShardDisk(t *testing.T) {
	phys := func(ps ...seaweed.PhysicalDisk) []seaweed.PhysicalDisk { return ps }
	p := func(id uint32, max, vols int64, ec int) seaweed.PhysicalDisk {
		return seaweed.PhysicalDisk{ID: id, MaxVolumes: max, Volumes: vols, EcShards: ec}
	}
	server := func(disks map[string][]seaweed.PhysicalDisk) *seaweed.Server {
		s := &seaweed.Server{ID: "s", Disks: map[string]*seaweed.Disk{}}
		for typ, ps := range disks {
			s.Disks[typ] = &seaweed.Disk{Type: typ, MaxVolumes: 10, FreeSlots: 5, Physical: ps}
		}
		return s
	}
	for _, tc := range []struct {
		name   string
		disks  map[string][]seaweed.PhysicalDisk
		typ    string
		want   uint32
		wantOK bool
	}{
		{"hdd then ssd: ssd", map[string][]seaweed.PhysicalDisk{"": phys(p(0, 10, 0, 0)), "ssd": phys(p(1, 10, 0, 0))}, "ssd", 1, true},
		{"hdd then ssd: hdd", map[string][]seaweed.PhysicalDisk{"": phys(p(0, 10, 0, 0)), "ssd": phys(p(1, 10, 0, 0))}, "hdd", 0, true},
		{"ssd then hdd: ssd", map[string][]seaweed.PhysicalDisk{"ssd": phys(p(0, 10, 0, 0)), "": phys(p(1, 10, 0, 0))}, "ssd", 0, false},
		{"ssd then hdd: hdd", map[string][]seaweed.PhysicalDisk{"ssd": phys(p(0, 10, 0, 0)), "": phys(p(1, 10, 0, 0))}, "", 0, true},
		{"ssd beside hdd, full", map[string][]seaweed.PhysicalDisk{"": phys(p(0, 10, 0, 0)), "ssd": phys(p(1, 10, 10, 0), p(2, 10, 9, 10))}, "ssd", 0, false},
		{"ssd beside hdd, one full", map[string][]seaweed.PhysicalDisk{"": phys(p(0, 10, 0, 0)), "ssd": phys(p(1, 10, 10, 0), p(2, 10, 9, 0))}, "ssd", 2, true},
		{"ssd only, two disks", map[string][]seaweed.PhysicalDisk{"ssd": phys(p(0, 10, 0, 0), p(1, 10, 0, 0))}, "ssd", 0, true},
		{"one type under two spellings", map[string][]seaweed.PhysicalDisk{"ssd": phys(p(0, 10, 0, 0)), "SSD": phys(p(0, 10, 0, 0))}, "ssd", 0, true},
		{"ssd only", map[string][]seaweed.PhysicalDisk{"ssd": phys(p(0, 10, 0, 0))}, "ssd", 0, true},
		{"two ssd: the freer", map[string][]seaweed.PhysicalDisk{"": phys(p(0, 10, 0, 0)), "ssd": phys(p(1, 10, 6, 0), p(2, 10, 2, 25))}, "ssd", 2, true},
		{"two ssd: a tie goes to the lower id", map[string][]seaweed.PhysicalDisk{"": phys(p(0, 10, 0, 0)), "ssd": phys(p(2, 10, 1, 0), p(1, 10, 1, 0))}, "ssd", 1, true},
		{"ssd at 0 and 2 beside hdd", map[string][]seaweed.PhysicalDisk{"ssd": phys(p(0, 10, 0, 0), p(2, 10, 9, 0)), "": phys(p(1, 10, 0, 0))}, "ssd", 2, true},
		{"two hdd beside ssd: the server picks", map[string][]seaweed.PhysicalDisk{"": phys(p(0, 10, 1, 0), p(1, 10, 5, 0)), "ssd": phys(p(2, 10, 0, 0))}, "", 0, true},
		{"no physical disks listed", map[string][]seaweed.PhysicalDisk{"": nil, "ssd": nil}, "ssd", 0, true},
		{"no disk of the type", map[string][]seaweed.PhysicalDisk{"": phys(p(0, 10, 0, 0))}, "ssd", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := server(tc.disks)
			got, ok := ShardDisk(s, tc.typ)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("ShardDisk = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
			if ShardTargetable(s, tc.typ, false) != tc.wantOK {
				t.Fatalf("ShardTargetable disagrees with ShardDisk")
			}
			if !ShardTargetable(s, tc.typ, true) {
				t.Fatalf("a server holding shards of the volume is not targetable")
			}
		})
	}
}
