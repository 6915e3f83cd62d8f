package rpc

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestOracleForwardMerged: concurrent linearizable lookups through a
// follower are merged into shared calls to the leader, and each request
// still gets exactly its own volumes, in its order, from the leader's view;
// a request naming a volume the leader does not know fails alone.
func TestOracleForwardMerged(t *testing.T) {
	c := newCluster(t)
	_, fs := c.splitMasterViews()
	c.waitPublished()
	f := c.nodes[fs[0]]
	// Warm up: the first forwarded call finds the leader's address.
	if _, err := volumeCapacity(t, f, pb.Consistency_CONSISTENCY_LINEARIZABLE, 7); err != nil {
		t.Fatal(err)
	}
	before := f.server.volFwd.calls.Load()

	const clients, calls = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for cl := 0; cl < clients; cl++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(cl), 1))
			for i := 0; i < calls; i++ {
				ids := make([]uint32, 1+r.IntN(5))
				unknown := r.IntN(10) == 0
				for k := range ids {
					ids[k] = uint32(7 + r.IntN(2))
				}
				if unknown {
					ids[r.IntN(len(ids))] = 9
				}
				// A loaded machine may see an election: retry as told.
				resp, err := volumeCapacity(t, f, pb.Consistency_CONSISTENCY_LINEARIZABLE, ids...)
				if unknown {
					if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "volume 9 ") {
						errs <- fmt.Errorf("ids %v: %v, want volume 9 refused", ids, err)
						return
					}
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("ids %v: %w", ids, err)
					return
				}
				if len(resp.Volumes) != len(ids) {
					errs <- fmt.Errorf("ids %v: %d volumes", ids, len(resp.Volumes))
					return
				}
				for k, v := range resp.Volumes {
					want := uint64(50 * oracleMiB)
					if ids[k] == 7 {
						want = 100 * oracleMiB // the leader's topology, not the follower's 90
					}
					if v.VolumeId != ids[k] || v.MasterSize != want {
						errs <- fmt.Errorf("ids %v: answer %d is volume %d of %d bytes", ids, k, v.VolumeId, v.MasterSize)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sent := f.server.volFwd.calls.Load() - before
	t.Logf("%d requests went to the leader in %d calls", clients*calls, sent)
	if sent >= clients*calls {
		t.Errorf("%d calls for %d requests: nothing was merged", sent, clients*calls)
	}
}
