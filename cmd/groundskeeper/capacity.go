package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// JSON shapes of `ctl capacity` (docs/architecture.md §11: volumes[] with
// volume_id, master_size, projected_size, adjustments[]).

type adjustmentJSON struct {
	TaskID     uint64 `json:"task_id"`
	Type       string `json:"type"`
	Kind       string `json:"kind"`
	DeltaBytes int64  `json:"delta_bytes"`
}

type volumeCapacityJSON struct {
	VolumeID      uint32           `json:"volume_id"`
	Collection    string           `json:"collection"`
	MasterSize    uint64           `json:"master_size"`
	ProjectedSize uint64           `json:"projected_size"`
	DeletedBytes  uint64           `json:"deleted_bytes"`
	Adjustments   []adjustmentJSON `json:"adjustments"`
}

type figuresJSON struct {
	UsedSlots    int64  `json:"used_slots"`
	FreeSlots    int64  `json:"free_slots"`
	VolumeBytes  uint64 `json:"volume_bytes"`
	Volumes      uint32 `json:"volumes"`
	EcShards     uint32 `json:"ec_shards"`
	EcShardBytes uint64 `json:"ec_shard_bytes"`
}

type diskCapacityJSON struct {
	DiskType  string      `json:"disk_type"`
	MaxSlots  int64       `json:"max_slots"`
	Master    figuresJSON `json:"master"`
	Projected figuresJSON `json:"projected"`
}

type serverCapacityJSON struct {
	Server  string             `json:"server"`
	Address string             `json:"address"`
	Disks   []diskCapacityJSON `json:"disks"`
}

type capacityJSON struct {
	Volumes      []volumeCapacityJSON `json:"volumes,omitempty"`
	Servers      []serverCapacityJSON `json:"servers,omitempty"`
	AppliedIndex uint64               `json:"applied_index"`
}

func kindName(k pb.Adjustment_Kind) string {
	switch k {
	case pb.Adjustment_IN_PROGRESS:
		return "in_progress"
	case pb.Adjustment_COMMITTED_UNREPORTED:
		return "committed_unreported"
	}
	return strings.ToLower(k.String())
}

func toFiguresJSON(f *pb.CapacityFigures) figuresJSON {
	return figuresJSON{UsedSlots: f.GetUsedSlots(), FreeSlots: f.GetFreeSlots(), VolumeBytes: f.GetVolumeBytes(),
		Volumes: f.GetVolumes(), EcShards: f.GetEcShards(), EcShardBytes: f.GetEcShardBytes()}
}

func parseVolumeIDs(s string) ([]uint32, error) {
	var out []uint32
	for _, p := range splitList(s) {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || n == 0 {
			return nil, usagef("--volume: %q is not a volume id (a number from 1)", p)
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

func (o *ctlOpts) capacity(args []string) error {
	var volumes, servers string
	var watch bool
	fs, err := o.subFlags("capacity", args, func(fs *flag.FlagSet) {
		fs.StringVar(&volumes, "volume", "", "volume ids, comma-separated")
		fs.StringVar(&servers, "server", "", "volume servers, comma-separated")
		fs.BoolVar(&watch, "watch", false, "print every change of the projections until interrupted")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	ids, err := parseVolumeIDs(volumes)
	if err != nil {
		return err
	}
	names := splitList(servers)
	if len(ids) == 0 && len(names) == 0 {
		return usagef("capacity needs --volume N[,N...] or --server ADDR[,ADDR...]")
	}
	if watch {
		return o.watchCapacity(ids, names)
	}
	out := capacityJSON{}
	var vols []*pb.VolumeCapacity
	var srvs []*pb.ServerCapacity
	if len(ids) > 0 {
		resp, err := ctlOracleCall(o, func(ctx context.Context, c pb.CapacityOracleClient) (*pb.GetVolumeCapacityResponse, error) {
			return c.GetVolumeCapacity(ctx, &pb.GetVolumeCapacityRequest{VolumeIds: ids, Consistency: o.consistency()})
		})
		if err != nil {
			return err
		}
		vols, out.AppliedIndex = resp.Volumes, resp.AppliedIndex
	}
	if len(names) > 0 {
		resp, err := ctlOracleCall(o, func(ctx context.Context, c pb.CapacityOracleClient) (*pb.GetServerCapacityResponse, error) {
			return c.GetServerCapacity(ctx, &pb.GetServerCapacityRequest{Servers: names, Consistency: o.consistency()})
		})
		if err != nil {
			return err
		}
		srvs, out.AppliedIndex = resp.Servers, max(out.AppliedIndex, resp.AppliedIndex)
	}
	if o.json {
		if len(ids) > 0 {
			out.Volumes = make([]volumeCapacityJSON, 0, len(vols))
		}
		for _, v := range vols {
			j := volumeCapacityJSON{VolumeID: v.VolumeId, Collection: v.Collection, MasterSize: v.MasterSize,
				ProjectedSize: v.ProjectedSize, DeletedBytes: v.DeletedBytes, Adjustments: []adjustmentJSON{}}
			for _, a := range v.Adjustments {
				j.Adjustments = append(j.Adjustments, adjustmentJSON{TaskID: a.TaskId, Type: fsm.TypeName(a.Type), Kind: kindName(a.Kind), DeltaBytes: a.DeltaBytes})
			}
			out.Volumes = append(out.Volumes, j)
		}
		for _, s := range srvs {
			j := serverCapacityJSON{Server: s.Server, Address: s.Address, Disks: []diskCapacityJSON{}}
			for _, d := range s.Disks {
				j.Disks = append(j.Disks, diskCapacityJSON{DiskType: d.DiskType, MaxSlots: d.MaxSlots,
					Master: toFiguresJSON(d.Master), Projected: toFiguresJSON(d.Projected)})
			}
			out.Servers = append(out.Servers, j)
		}
		return o.writeJSON(out)
	}
	if len(vols) > 0 {
		w := o.table()
		fmt.Fprintln(w, "VOLUME\tCOLLECTION\tMASTER SIZE\tGARBAGE\tPROJECTED\tADJUSTMENTS")
		for _, v := range vols {
			var adj []string
			for _, a := range v.Adjustments {
				adj = append(adj, fmt.Sprintf("task %d %s %s %s", a.TaskId, fsm.TypeName(a.Type), strings.ReplaceAll(kindName(a.Kind), "_", " "), signedBytes(a.DeltaBytes)))
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", v.VolumeId, dash(v.Collection), humanBytes(v.MasterSize),
				humanBytes(v.DeletedBytes), humanBytes(v.ProjectedSize), dash(strings.Join(adj, "; ")))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if len(srvs) > 0 {
		if len(vols) > 0 {
			fmt.Fprintln(o.out)
		}
		w := o.table()
		fmt.Fprintln(w, "SERVER\tDISK\tMAX SLOTS\tUSED\tFREE\tBYTES\tEC SHARDS\tPROJ USED\tPROJ FREE\tPROJ BYTES\tPROJ EC SHARDS")
		for _, s := range srvs {
			for _, d := range s.Disks {
				m, p := d.Master, d.Projected
				typ, shards := diskLabels(d)
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%s\t%s\n", s.Server, typ, d.MaxSlots,
					m.GetUsedSlots(), m.GetFreeSlots(), humanBytes(m.GetVolumeBytes()), m.GetEcShards(),
					p.GetUsedSlots(), p.GetFreeSlots(), humanBytes(p.GetVolumeBytes()), shards)
			}
		}
		return w.Flush()
	}
	return nil
}

// humanBytes renders a byte count in binary units.
func humanBytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit && exp < 5; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

func signedBytes(d int64) string {
	if d < 0 {
		return "-" + humanBytes(uint64(-d))
	}
	return "+" + humanBytes(uint64(d))
}

// diskLabels names a disk's type ("hdd" for SeaweedFS's default) and its
// projected EC shards, with the bytes of those still arriving.
func diskLabels(d *pb.DiskCapacity) (typ, shards string) {
	typ = d.DiskType
	if typ == "" {
		typ = "hdd"
	}
	p := d.Projected
	shards = fmt.Sprint(p.GetEcShards())
	if p.GetEcShardBytes() > 0 {
		shards += fmt.Sprintf(" (+%s arriving)", humanBytes(p.GetEcShardBytes()))
	}
	return typ, shards
}
