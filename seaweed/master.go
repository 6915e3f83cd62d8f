package seaweed

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// AdminLockName is the master lock groundskeeper's leader holds: the one
// SeaweedFS's own `weed admin` holds to announce itself, so the two never run
// maintenance at once, and while it is held a vacuum switched off with
// by_plugin stays off (and switches itself back on if we die).
const AdminLockName = "admin-server"

// Lock timing of the master: a grant lasts 10 s; renew well before.
const (
	lockRenewEvery = 4 * time.Second
	lockRPCTimeout = 3 * time.Second
)

// MaxTopologyMessage is the largest VolumeList answer accepted (a million
// volumes is roughly 40 MB on the wire).
const MaxTopologyMessage = 256 << 20

// Master talks to a SeaweedFS master over gRPC.
type Master struct {
	addr Address
	conn *grpc.ClientConn
	c    master_pb.SeaweedClient
}

// DialMaster prepares a client for a master given as host:port or
// host:port.grpcPort. Nothing is contacted yet.
func DialMaster(addr string) (*Master, error) {
	a, err := ParseAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("--master: %w", err)
	}
	conn, err := grpc.NewClient(a.GRPC,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxTopologyMessage)))
	if err != nil {
		return nil, fmt.Errorf("dial master %s: %w", a.GRPC, err)
	}
	return &Master{addr: a, conn: conn, c: master_pb.NewSeaweedClient(conn)}, nil
}

// Addr is the master's address.
func (m *Master) Addr() Address { return m.addr }

// Close closes the connection.
func (m *Master) Close() error { return m.conn.Close() }

// Topology fetches the whole topology.
func (m *Master) Topology(ctx context.Context) (*Topology, error) {
	resp, err := m.c.VolumeList(ctx, &master_pb.VolumeListRequest{})
	if err != nil {
		return nil, fmt.Errorf("master %s: volume list: %w", m.addr.HTTP, err)
	}
	return FromVolumeList(resp), nil
}

// SetAutoVacuum switches the master's own periodic vacuum on or off. It uses
// the plugin flag, which the master keeps only while AdminLockName is held,
// and leaves the operator's own switch alone. The setting lives in the
// master's memory, so callers re-send it periodically.
func (m *Master) SetAutoVacuum(ctx context.Context, on bool) error {
	var err error
	if on {
		_, err = m.c.EnableVacuum(ctx, &master_pb.EnableVacuumRequest{ByPlugin: true})
	} else {
		_, err = m.c.DisableVacuum(ctx, &master_pb.DisableVacuumRequest{ByPlugin: true})
	}
	if err != nil {
		return fmt.Errorf("master %s: set automatic vacuum %v: %w", m.addr.HTTP, on, err)
	}
	return nil
}

// AdminLock keeps the master's admin lock while it runs.
type AdminLock struct {
	m      *Master
	client string

	mu     sync.Mutex
	token  int64
	ts     int64
	held   bool
	lastEr error
}

// NewAdminLock returns a lock keeper identifying itself as client.
func (m *Master) NewAdminLock(client string) *AdminLock { return &AdminLock{m: m, client: client} }

// Held reports whether the lock is currently held, and the last error.
func (l *AdminLock) Held() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held, l.lastEr
}

// Run acquires the lock and renews it until ctx ends, then releases it.
// Losing it (master restart, someone else holding it) is retried every
// renewal period; Held tells the current state.
func (l *AdminLock) Run(ctx context.Context) {
	t := time.NewTicker(lockRenewEvery)
	defer t.Stop()
	for {
		l.renew(ctx)
		select {
		case <-ctx.Done():
			l.release()
			return
		case <-t.C:
		}
	}
}

func (l *AdminLock) renew(ctx context.Context) {
	l.mu.Lock()
	token, ts := l.token, l.ts
	l.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, lockRPCTimeout)
	defer cancel()
	resp, err := l.m.c.LeaseAdminToken(rctx, &master_pb.LeaseAdminTokenRequest{
		PreviousToken: token, PreviousLockTime: ts, LockName: AdminLockName, ClientName: l.client,
		Message: "groundskeeper leader",
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.held, l.token, l.ts, l.lastEr = false, 0, 0, fmt.Errorf("master %s: admin lock: %w", l.m.addr.HTTP, err)
		return
	}
	l.held, l.token, l.ts, l.lastEr = true, resp.GetToken(), resp.GetLockTsNs(), nil
}

func (l *AdminLock) release() {
	l.mu.Lock()
	token, ts, held := l.token, l.ts, l.held
	l.held, l.token, l.ts = false, 0, 0
	l.mu.Unlock()
	if !held {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockRPCTimeout)
	defer cancel()
	_, _ = l.m.c.ReleaseAdminToken(ctx, &master_pb.ReleaseAdminTokenRequest{PreviousToken: token, PreviousLockTime: ts, LockName: AdminLockName})
}
