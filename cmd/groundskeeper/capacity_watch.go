package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// ctlInterrupt is the context `ctl capacity --watch` runs under: until
// SIGINT or SIGTERM (tests replace it).
var ctlInterrupt = func() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// capacityUpdateJSON is one line of `ctl capacity --watch --json`.
type capacityUpdateJSON struct {
	AppliedIndex     uint64               `json:"applied_index"`
	TopologyAt       string               `json:"topology_at,omitempty"`
	Volumes          []volumeCapacityJSON `json:"volumes"`
	Servers          []serverCapacityJSON `json:"servers"`
	MissingVolumeIDs []uint32             `json:"missing_volume_ids"`
	MissingServers   []string             `json:"missing_servers"`
}

// watchCapacity streams projection updates until interrupted. A watch is
// always served from the contacted admin's own state (--stale is implied). A stream
// that breaks (the admin stopped, the connection dropped) is reopened
// through any admin; the new stream starts with every projection again.
func (o *ctlOpts) watchCapacity(ids []uint32, names []string) error {
	addrs := splitList(o.admin)
	if len(addrs) == 0 {
		return usagef("--admin is required (or set GROUNDSKEEPER_ADMIN)")
	}
	c, err := o.dial(addrs)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := ctlInterrupt()
	defer stop()
	req := &pb.WatchCapacityRequest{VolumeIds: ids, Servers: names}
	for {
		st, first, cancel, err := o.openWatch(ctx, c, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return rpcError(err)
		}
		err = o.printWatch(ctx, st, first)
		cancel()
		if ctx.Err() != nil {
			return nil // interrupted: a clean end
		}
		if status.Code(err) != codes.Unavailable {
			return rpcError(err)
		}
	}
}

// openWatch starts a stream through whichever admin answers, within
// --timeout, and returns it with its first update.
func (o *ctlOpts) openWatch(ctx context.Context, c *rpc.Client, req *pb.WatchCapacityRequest) (pb.CapacityOracle_WatchCapacityClient, *pb.CapacityUpdate, context.CancelFunc, error) {
	type opened struct {
		st     pb.CapacityOracle_WatchCapacityClient
		first  *pb.CapacityUpdate
		cancel context.CancelFunc
	}
	octx, ocancel := context.WithTimeout(ctx, o.timeout)
	defer ocancel()
	got, err := rpc.DoConn(octx, c, min(o.timeout, 5*time.Second), func(try context.Context, conn grpc.ClientConnInterface) (opened, error) {
		// The stream outlives this try; the try's deadline only bounds
		// the wait for the first update.
		sctx, scancel := context.WithCancel(ctx)
		stopTimer := context.AfterFunc(try, scancel)
		st, err := pb.NewCapacityOracleClient(conn).WatchCapacity(sctx, req)
		var first *pb.CapacityUpdate
		if err == nil {
			first, err = st.Recv()
		}
		if !stopTimer() && err != nil {
			err = status.Error(codes.DeadlineExceeded, "no first update before the try's deadline")
		}
		if err != nil {
			scancel()
			return opened{}, err
		}
		return opened{st: st, first: first, cancel: scancel}, nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return got.st, got.first, got.cancel, nil
}

// printWatch prints updates until the stream ends; it returns why.
func (o *ctlOpts) printWatch(ctx context.Context, st pb.CapacityOracle_WatchCapacityClient, u *pb.CapacityUpdate) error {
	for {
		if err := o.printUpdate(u); err != nil {
			return err
		}
		var err error
		if u, err = st.Recv(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}

func (o *ctlOpts) printUpdate(u *pb.CapacityUpdate) error {
	if o.json {
		j := capacityUpdateJSON{AppliedIndex: u.AppliedIndex, Volumes: []volumeCapacityJSON{}, Servers: []serverCapacityJSON{},
			MissingVolumeIDs: append([]uint32{}, u.MissingVolumeIds...), MissingServers: append([]string{}, u.MissingServers...)}
		if u.TopologyAt != 0 {
			j.TopologyAt = time.Unix(0, u.TopologyAt).UTC().Format(time.RFC3339Nano)
		}
		for _, v := range u.Volumes {
			vj := volumeCapacityJSON{VolumeID: v.VolumeId, Collection: v.Collection, MasterSize: v.MasterSize,
				ProjectedSize: v.ProjectedSize, DeletedBytes: v.DeletedBytes, Adjustments: []adjustmentJSON{}}
			for _, a := range v.Adjustments {
				vj.Adjustments = append(vj.Adjustments, adjustmentJSON{TaskID: a.TaskId, Type: fsm.TypeName(a.Type), Kind: kindName(a.Kind), DeltaBytes: a.DeltaBytes})
			}
			j.Volumes = append(j.Volumes, vj)
		}
		for _, s := range u.Servers {
			sj := serverCapacityJSON{Server: s.Server, Address: s.Address, Disks: []diskCapacityJSON{}}
			for _, d := range s.Disks {
				sj.Disks = append(sj.Disks, diskCapacityJSON{DiskType: d.DiskType, MaxSlots: d.MaxSlots,
					Master: toFiguresJSON(d.Master), Projected: toFiguresJSON(d.Projected)})
			}
			j.Servers = append(j.Servers, sj)
		}
		b, err := json.Marshal(j) // one line per update
		if err != nil {
			return fmt.Errorf("encode update: %w", err)
		}
		_, err = fmt.Fprintf(o.out, "%s\n", b)
		return err
	}
	var b strings.Builder
	prefix := fmt.Sprintf("index %d  ", u.AppliedIndex)
	for _, v := range u.Volumes {
		adj := make([]string, 0, len(v.Adjustments))
		for _, a := range v.Adjustments {
			adj = append(adj, fmt.Sprintf("task %d %s %s %s", a.TaskId, fsm.TypeName(a.Type), strings.ReplaceAll(kindName(a.Kind), "_", " "), signedBytes(a.DeltaBytes)))
		}
		fmt.Fprintf(&b, "%svolume %d  master %s  garbage %s  projected %s  adjustments %s\n", prefix, v.VolumeId,
			humanBytes(v.MasterSize), humanBytes(v.DeletedBytes), humanBytes(v.ProjectedSize), dash(strings.Join(adj, "; ")))
	}
	for _, s := range u.Servers {
		for _, d := range s.Disks {
			m, p := d.Master, d.Projected
			typ, shards := diskLabels(d)
			fmt.Fprintf(&b, "%sserver %s %s  used %d/%d -> %d/%d slots  bytes %s -> %s  ec shards %d -> %s\n", prefix, s.Server, typ,
				m.GetUsedSlots(), d.MaxSlots, p.GetUsedSlots(), d.MaxSlots, humanBytes(m.GetVolumeBytes()), humanBytes(p.GetVolumeBytes()),
				m.GetEcShards(), shards)
		}
	}
	for _, id := range u.MissingVolumeIds {
		fmt.Fprintf(&b, "%svolume %d  no longer in the master's topology\n", prefix, id)
	}
	for _, name := range u.MissingServers {
		fmt.Fprintf(&b, "%sserver %s  no longer in the master's topology\n", prefix, name)
	}
	_, err := fmt.Fprint(o.out, b.String())
	return err
}
