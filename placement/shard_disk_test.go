package placement

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestShardDisk: the disk a shard copy names is a disk of the volume's
// type: the freest one that has an id above 0; location 0 only where the
// server's own choice is a disk of that type anyway (the hdd type, or a
// server of one disk type); a server whose only disk of the type is
// location 0 beside a disk of another type cannot take the copy; a master
// that lists no physical disks leaves the choice to the server.
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
		{"ssd then hdd: hdd", map[string][]seaweed.PhysicalDisk{"ssd": phys(p(0, 10, 0, 0)), "": phys(p(1, 10, 0, 0))}, "", 1, true},
		{"ssd only", map[string][]seaweed.PhysicalDisk{"ssd": phys(p(0, 10, 0, 0))}, "ssd", 0, true},
		{"two ssd: the freer", map[string][]seaweed.PhysicalDisk{"": phys(p(0, 10, 0, 0)), "ssd": phys(p(1, 10, 6, 0), p(2, 10, 2, 25))}, "ssd", 2, true},
		{"two ssd: a tie goes to the lower id", map[string][]seaweed.PhysicalDisk{"": phys(p(0, 10, 0, 0)), "ssd": phys(p(2, 10, 1, 0), p(1, 10, 1, 0))}, "ssd", 1, true},
		{"ssd at 0 and 2 beside hdd", map[string][]seaweed.PhysicalDisk{"ssd": phys(p(0, 10, 0, 0), p(2, 10, 9, 0)), "": phys(p(1, 10, 0, 0))}, "ssd", 2, true},
		{"two hdd: the freer, 0 included", map[string][]seaweed.PhysicalDisk{"": phys(p(0, 10, 1, 0), p(1, 10, 5, 0))}, "", 0, true},
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
