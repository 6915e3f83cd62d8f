package worker

import (
	"context"
	"fmt"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
)

// volumeCopy is one copy of a volume from a source replica to a target
// server, as a move (balance) and a replicate make it: VolumeCopy onto the
// target (which pulls from the source and mounts the copy at the end),
// a tail of what the source appended meanwhile, and a check that the copy
// is not behind the source.
type volumeCopy struct {
	c              *seaweed.VolumeClient
	vid            uint32
	collection     string
	source, target string
	diskType       string
	size           uint64 // the volume's size, for progress (0: unknown)
}

// copyAndTail copies the volume to the target (step copyStep, progress
// from..to-10%) and tails the source's appends since (step tailStep, at
// to). It returns the step that failed with the error.
func (cp volumeCopy) copyAndTail(ctx context.Context, p *progressReporter, copyStep, tailStep string, from, to float64) (string, error) {
	lastAppendAtNs, err := cp.c.VolumeCopy(ctx, cp.target, cp.vid, cp.collection, cp.source, cp.diskType, func(processed int64) {
		if cp.size > 0 {
			p.within(from + (to-from)*min(1, float64(processed)/float64(cp.size)))
		}
	})
	if err != nil {
		return copyStep, err
	}
	p.begin(tailStep, to)
	if err := ctx.Err(); err != nil {
		return tailStep, err
	}
	if err := cp.c.VolumeTailReceiver(ctx, cp.target, cp.vid, lastAppendAtNs, tailIdleSeconds, cp.source); err != nil {
		return tailStep, err
	}
	return "", nil
}

// verify reads the source's files, then the target's: the target must not
// be behind (data, index or file count; it may be ahead, being writable
// already). It returns the target's status.
func (cp volumeCopy) verify(ctx context.Context) (*volume_server_pb.ReadVolumeFileStatusResponse, error) {
	cctx, cancel := call(ctx)
	defer cancel()
	src, err := cp.c.ReadVolumeFileStatus(cctx, cp.source, cp.vid)
	if err != nil {
		return nil, err
	}
	dst, err := cp.c.ReadVolumeFileStatus(cctx, cp.target, cp.vid)
	if err != nil {
		return nil, err
	}
	if dst.GetDatFileSize() < src.GetDatFileSize() || dst.GetIdxFileSize() < src.GetIdxFileSize() || dst.GetFileCount() < src.GetFileCount() {
		return nil, fmt.Errorf("copy of volume %d on %s is behind the source %s (dat %d < %d, idx %d < %d or files %d < %d)",
			cp.vid, cp.target, cp.source, dst.GetDatFileSize(), src.GetDatFileSize(), dst.GetIdxFileSize(), src.GetIdxFileSize(), dst.GetFileCount(), src.GetFileCount())
	}
	return dst, nil
}
