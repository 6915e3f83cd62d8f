package sim

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errNotLeader is raft.NotLeaderError's text: what a SeaweedFS master
// that is not the raft leader answers to leader-only calls.
var errNotLeader = errors.New("raft.Server: Not current leader")

// endpoint is one master process's gRPC listener. With Config.Masters > 1
// the endpoints share one master state, as raft peers share the cluster;
// only the leader's endpoint serves it, the others are followers.
type endpoint struct {
	idx      int
	id       string // host:httpPort
	grpcAddr string
	grpcPort int

	gs  *grpc.Server // guarded by master.lifeMu
	lis net.Listener // guarded by master.lifeMu

	alive bool // guarded by master.mu: listening
}

type master struct {
	c        *Cluster
	id       string // endpoint 0's host:httpPort
	grpcAddr string // endpoint 0's
	grpcPort int

	lifeMu sync.Mutex
	eps    []*endpoint

	mu          sync.Mutex
	up          bool // a leader serves
	leader      int  // index into eps; -1 while no leader
	electGen    uint64
	epoch       uint64
	nodes       map[*VolumeServer]*nodeView
	locks       map[string]*adminLock
	vacOperator bool
	vacPlugin   bool
}

type adminLock struct {
	token  int64
	at     time.Time
	client string
}

// nodeView is what the master last heard from one volume server.
type nodeView struct {
	s     *VolumeServer
	vols  map[uint32]*master_pb.VolumeInformationMessage
	ecs   map[uint32]*master_pb.VolumeEcShardInformationMessage
	dirty bool
	cache *master_pb.DataNodeInfo // full DataNodeInfo, rebuilt when dirty
	disk  *master_pb.DiskInfo     // counters only (no lists)
}

func newMaster(c *Cluster) (*master, error) {
	m := &master{
		c: c, up: true, leader: 0, epoch: 1,
		nodes: map[*VolumeServer]*nodeView{}, locks: map[string]*adminLock{},
	}
	for i := 0; i < c.cfg.Masters; i++ {
		port := 0
		if c.cfg.MasterHTTPPort != 0 {
			port = c.cfg.MasterHTTPPort + i + grpcPortOffset
		}
		lis, err := listen(c.cfg.Host, port)
		if err != nil {
			for _, ep := range m.eps {
				ep.gs.Stop()
				ep.lis.Close()
			}
			return nil, fmt.Errorf("sim: master %d: %w", i, err)
		}
		gp := lis.Addr().(*net.TCPAddr).Port
		ep := &endpoint{idx: i, grpcPort: gp, alive: true,
			id:       net.JoinHostPort(c.cfg.Host, strconv.Itoa(gp-grpcPortOffset)),
			grpcAddr: net.JoinHostPort(c.cfg.Host, strconv.Itoa(gp)),
		}
		m.serve(ep, lis)
		m.eps = append(m.eps, ep)
	}
	m.id, m.grpcAddr, m.grpcPort = m.eps[0].id, m.eps[0].grpcAddr, m.eps[0].grpcPort
	return m, nil
}

// serve starts ep's gRPC server on lis (lifeMu held, or during newMaster).
func (m *master) serve(ep *endpoint, lis net.Listener) {
	gs := m.c.newGRPCServer(ident{id: MasterName, grpcAddr: ep.grpcAddr})
	master_pb.RegisterSeaweedServer(gs, &masterHandler{m: m, ep: ep})
	ep.gs, ep.lis = gs, lis
	go gs.Serve(lis)
}

// halt stops ep's gRPC server (lifeMu held).
func (ep *endpoint) halt() {
	if ep.gs != nil {
		ep.gs.Stop()
		ep.lis.Close()
		ep.gs, ep.lis = nil, nil
	}
}

func (m *master) currentEpoch() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.epoch
}

// loseLeaderLocked ends the leader's term: the leader's memory (who
// registered, admin locks, vacuum switches) goes with it, and any pending
// election is cancelled.
func (m *master) loseLeaderLocked() {
	m.up = false
	m.leader = -1
	m.epoch++
	m.electGen++
	m.nodes = map[*VolumeServer]*nodeView{}
	m.locks = map[string]*adminLock{}
	m.vacOperator, m.vacPlugin = false, false
}

// leadLocked makes endpoint i the leader with an empty memory; the caller
// then calls refill with the returned epoch.
func (m *master) leadLocked(i int) uint64 {
	m.leader = i
	m.up = true
	m.epoch++
	m.electGen++
	return m.epoch
}

// refill re-registers every volume server with the new master life over
// Config.MasterRefillDelay, as their heartbeats reach a new leader.
func (m *master) refill(epoch uint64) {
	n := len(m.c.servers)
	for i, s := range m.c.servers {
		d := m.c.cfg.MasterRefillDelay * time.Duration(i+1) / time.Duration(n)
		if d <= 0 {
			m.register(s, 0, epoch)
			continue
		}
		time.AfterFunc(d, func() { m.register(s, 0, epoch) })
	}
}

// scheduleElectionLocked elects a leader after Config.MasterElectionDelay,
// preferring an endpoint other than avoid.
func (m *master) scheduleElectionLocked(avoid int) {
	gen := m.electGen
	time.AfterFunc(m.c.cfg.MasterElectionDelay, func() { m.elect(gen, avoid) })
}

func (m *master) elect(gen uint64, avoid int) {
	if m.c.closed.Load() {
		return
	}
	m.mu.Lock()
	if m.electGen != gen || m.leader != -1 {
		m.mu.Unlock()
		return
	}
	pick := -1
	for _, ep := range m.eps {
		if ep.alive && (pick == -1 || (pick == avoid && ep.idx != avoid)) {
			pick = ep.idx
		}
	}
	if pick == -1 { // nobody alive: the next revived endpoint elects
		m.mu.Unlock()
		return
	}
	epoch := m.leadLocked(pick)
	m.mu.Unlock()
	m.refill(epoch)
}

func (m *master) stop() {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	m.mu.Lock()
	wasUp := false
	for _, ep := range m.eps {
		wasUp = wasUp || ep.alive
		ep.alive = false
	}
	if !wasUp {
		m.mu.Unlock()
		return
	}
	m.loseLeaderLocked()
	m.mu.Unlock()
	for _, ep := range m.eps {
		ep.halt()
	}
}

// start brings every stopped endpoint back on its port and, with no leader,
// makes the lowest one the leader at once.
func (m *master) start() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.c.closed.Load() {
		return errors.New("sim: cluster closed")
	}
	for _, ep := range m.eps {
		if err := m.reviveLocked(ep); err != nil {
			return err
		}
	}
	m.mu.Lock()
	if m.leader != -1 {
		m.mu.Unlock()
		return nil
	}
	epoch := m.leadLocked(0)
	m.mu.Unlock()
	m.refill(epoch)
	return nil
}

// reviveLocked listens again on ep's address (lifeMu held).
func (m *master) reviveLocked(ep *endpoint) error {
	m.mu.Lock()
	alive := ep.alive
	m.mu.Unlock()
	if alive {
		return nil
	}
	lis, err := net.Listen("tcp", ep.grpcAddr)
	if err != nil {
		return fmt.Errorf("sim: restart master %d: %w", ep.idx, err)
	}
	m.serve(ep, lis)
	m.mu.Lock()
	ep.alive = true
	m.mu.Unlock()
	return nil
}

// kill makes endpoint i unreachable; when it led, the others elect a new
// leader after Config.MasterElectionDelay.
func (m *master) kill(i int) error {
	if i < 0 || i >= len(m.eps) {
		return fmt.Errorf("sim: no master %d (there are %d)", i, len(m.eps))
	}
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	ep := m.eps[i]
	m.mu.Lock()
	if !ep.alive {
		m.mu.Unlock()
		return nil
	}
	ep.alive = false
	if m.leader == i {
		m.loseLeaderLocked()
		m.scheduleElectionLocked(i)
	}
	m.mu.Unlock()
	ep.halt()
	return nil
}

// revive brings endpoint i back as a follower; with no leader it starts an
// election.
func (m *master) revive(i int) error {
	if i < 0 || i >= len(m.eps) {
		return fmt.Errorf("sim: no master %d (there are %d)", i, len(m.eps))
	}
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.c.closed.Load() {
		return errors.New("sim: cluster closed")
	}
	if err := m.reviveLocked(m.eps[i]); err != nil {
		return err
	}
	m.mu.Lock()
	if m.leader == -1 {
		m.electGen++
		m.scheduleElectionLocked(-1)
	}
	m.mu.Unlock()
	return nil
}

// stepDown ends the leader's term; another endpoint (if one is alive) leads
// after Config.MasterElectionDelay.
func (m *master) stepDown() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader == -1 {
		return errors.New("sim: no master leader to step down")
	}
	old := m.leader
	m.loseLeaderLocked()
	m.scheduleElectionLocked(old)
	return nil
}

func (m *master) shutdown() {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	m.mu.Lock()
	m.up = false
	m.leader = -1
	m.epoch++
	m.electGen++
	for _, ep := range m.eps {
		ep.alive = false
	}
	m.mu.Unlock()
	for _, ep := range m.eps {
		ep.halt()
	}
}

// register records a volume server's full state, as its first heartbeat
// does. gen 0 accepts any server generation; epoch pins the master life.
func (m *master) register(s *VolumeServer, gen, epoch uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.up || (gen != 0 && s.regGen != gen) {
		return
	}
	n := &nodeView{
		s:     s,
		vols:  make(map[uint32]*master_pb.VolumeInformationMessage, len(s.vols)),
		ecs:   make(map[uint32]*master_pb.VolumeEcShardInformationMessage, len(s.ecs)),
		dirty: true,
	}
	for vid, r := range s.vols {
		if !r.unloaded {
			n.vols[vid] = s.volumeMessage(r)
		}
	}
	for vid, e := range s.ecs {
		if e.mounted != 0 {
			n.ecs[vid] = s.ecMessage(vid, e)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.up || m.epoch != epoch {
		return
	}
	m.nodes[s] = n
}

func (m *master) scheduleRegister(s *VolumeServer, gen uint64) {
	epoch := m.currentEpoch()
	if d := m.c.cfg.HeartbeatDelay; d > 0 {
		time.AfterFunc(d, func() { m.register(s, gen, epoch) })
		return
	}
	m.register(s, gen, epoch)
}

func (m *master) scheduleUnregister(s *VolumeServer, gen uint64) {
	unregister := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.regGen != gen {
			return
		}
		m.mu.Lock()
		delete(m.nodes, s)
		m.mu.Unlock()
	}
	if d := m.c.cfg.HeartbeatDelay; d > 0 {
		time.AfterFunc(d, unregister)
		return
	}
	unregister()
}

// updateLocked applies changed volumes/EC volumes of s (s.mu held).
func (m *master) updateLocked(s *VolumeServer, keys []uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.up {
		return
	}
	n := m.nodes[s]
	if n == nil {
		return
	}
	for _, k := range keys {
		vid := uint32(k)
		if k&ecFlag != 0 {
			if e := s.ecs[vid]; e != nil && e.mounted != 0 {
				n.ecs[vid] = s.ecMessage(vid, e)
			} else {
				delete(n.ecs, vid)
			}
			continue
		}
		if r := s.vols[vid]; r != nil && !r.unloaded {
			n.vols[vid] = s.volumeMessage(r)
		} else {
			delete(n.vols, vid)
		}
	}
	n.dirty = true
}

// touchLocked makes the master rebuild the server's node (its counts)
// without any volume change (s.mu held).
func (m *master) touchLocked(s *VolumeServer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.nodes[s]; n != nil {
		n.dirty = true
	}
}

// setReadOnly is the master side of VolumeMarkReadonly: the volume server
// calls it (synchronously) before and after flipping its flag.
func (m *master) setReadOnly(s *VolumeServer, vid uint32, ro bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.up {
		return fmt.Errorf("grpc VolumeMarkReadonly with master %s: rpc error: code = Unavailable desc = connection error: dial tcp %s: connect: connection refused", m.id, m.grpcAddr)
	}
	m.setReadOnlyLocked(s, vid, ro)
	return nil
}

func (m *master) setReadOnlyLocked(s *VolumeServer, vid uint32, ro bool) {
	n := m.nodes[s]
	if n == nil {
		return
	}
	if vi := n.vols[vid]; vi != nil && vi.ReadOnly != ro {
		nvi := &master_pb.VolumeInformationMessage{
			Id: vi.Id, Size: vi.Size, Collection: vi.Collection, FileCount: vi.FileCount, DeleteCount: vi.DeleteCount,
			DeletedByteCount: vi.DeletedByteCount, ReadOnly: ro, ReadOnlyCanDelete: vi.ReadOnlyCanDelete && ro,
			ReplicaPlacement: vi.ReplicaPlacement, Version: vi.Version, Ttl: vi.Ttl, CompactRevision: vi.CompactRevision,
			ModifiedAtSecond: vi.ModifiedAtSecond, DiskType: vi.DiskType, DiskId: vi.DiskId,
			RemoteStorageName: vi.RemoteStorageName, RemoteStorageKey: vi.RemoteStorageKey,
		}
		n.vols[vid] = nvi
		n.dirty = true
	}
}

// build returns the node's full DataNodeInfo, rebuilding it after changes.
// The returned messages are never modified afterwards, so they can be
// marshalled concurrently.
func (n *nodeView) build() (*master_pb.DataNodeInfo, *master_pb.DiskInfo) {
	if !n.dirty && n.cache != nil {
		return n.cache, n.disk
	}
	s := n.s
	vids := make([]uint32, 0, len(n.vols))
	for vid := range n.vols {
		vids = append(vids, vid)
	}
	sort.Slice(vids, func(i, j int) bool { return vids[i] < vids[j] })
	vis := make([]*master_pb.VolumeInformationMessage, len(vids))
	var active, remote int64
	for i, vid := range vids {
		vi := n.vols[vid]
		vis[i] = vi
		if !vi.ReadOnly {
			active++
		}
		if vi.RemoteStorageName != "" {
			remote++
		}
	}
	eids := make([]uint32, 0, len(n.ecs))
	for vid := range n.ecs {
		eids = append(eids, vid)
	}
	sort.Slice(eids, func(i, j int) bool { return eids[i] < eids[j] })
	ecs := make([]*master_pb.VolumeEcShardInformationMessage, len(eids))
	shards := 0
	for i, vid := range eids {
		ecs[i] = n.ecs[vid]
		shards += bits.OnesCount32(ecs[i].EcIndexBits)
	}
	counts := &master_pb.DiskInfo{
		Type:              s.diskType,
		VolumeCount:       int64(len(vis)),
		MaxVolumeCount:    s.maxVolumes.Load(),
		FreeVolumeCount:   s.maxVolumes.Load() - (int64(len(vis)) - remote) - int64((shards+DataShards-1)/DataShards),
		ActiveVolumeCount: active,
		RemoteVolumeCount: remote,
	}
	full := diskWithLists(counts, vis, ecs)
	n.cache = &master_pb.DataNodeInfo{
		Id: s.id, Address: s.id, GrpcPort: uint32(s.grpcPort),
		DiskInfos: map[string]*master_pb.DiskInfo{s.diskType: full},
	}
	n.disk = counts
	n.dirty = false
	return n.cache, n.disk
}

func diskWithLists(counts *master_pb.DiskInfo, vis []*master_pb.VolumeInformationMessage, ecs []*master_pb.VolumeEcShardInformationMessage) *master_pb.DiskInfo {
	return &master_pb.DiskInfo{
		Type: counts.Type, VolumeCount: counts.VolumeCount, MaxVolumeCount: counts.MaxVolumeCount,
		FreeVolumeCount: counts.FreeVolumeCount, ActiveVolumeCount: counts.ActiveVolumeCount,
		RemoteVolumeCount: counts.RemoteVolumeCount, VolumeInfos: vis, EcShardInfos: ecs,
		MaxVolumeCountByDisk: map[uint32]int64{0: counts.MaxVolumeCount},
	}
}

func addCounts(into map[string]*master_pb.DiskInfo, d *master_pb.DiskInfo) {
	a := into[d.Type]
	if a == nil {
		a = &master_pb.DiskInfo{Type: d.Type}
		into[d.Type] = a
	}
	a.VolumeCount += d.VolumeCount
	a.MaxVolumeCount += d.MaxVolumeCount
	a.FreeVolumeCount += d.FreeVolumeCount
	a.ActiveVolumeCount += d.ActiveVolumeCount
	a.RemoteVolumeCount += d.RemoteVolumeCount
}

type volumeFilter struct {
	all        bool
	nothing    bool
	collection *string
	ids        map[uint32]bool
	remoteName *string
}

func newVolumeFilter(req *master_pb.VolumeListRequest) (volumeFilter, error) {
	var f volumeFilter
	if req.TopologyOnly {
		if req.Collection != "" || len(req.VolumeIds) > 0 || req.DefaultCollectionOnly || req.RemoteStorageName != "" || req.LocalVolumeOnly {
			return f, errors.New("topology_only asks for no volumes, so it cannot be combined with collection, volume_ids, default_collection_only, remote_storage_name or local_volume_only")
		}
		f.nothing = true
		return f, nil
	}
	switch {
	case req.Collection != "":
		f.collection = &req.Collection
	case req.DefaultCollectionOnly:
		f.collection = new(string)
	}
	switch {
	case req.RemoteStorageName != "":
		f.remoteName = &req.RemoteStorageName
	case req.LocalVolumeOnly:
		f.remoteName = new(string)
	}
	if len(req.VolumeIds) > 0 {
		f.ids = make(map[uint32]bool, len(req.VolumeIds))
		for _, id := range req.VolumeIds {
			f.ids[id] = true
		}
	}
	f.all = f.collection == nil && f.ids == nil && f.remoteName == nil
	return f, nil
}

func (f volumeFilter) match(id uint32, collection, remote string) bool {
	if f.nothing {
		return false
	}
	if f.collection != nil && *f.collection != collection {
		return false
	}
	if f.remoteName != nil && *f.remoteName != remote && *f.remoteName != "*" {
		return false
	}
	if f.remoteName != nil && *f.remoteName == "*" && remote == "" {
		return false
	}
	return f.ids == nil || f.ids[id]
}

// topology builds the VolumeList answer (m.mu held).
func (m *master) topologyLocked(f volumeFilter) *master_pb.TopologyInfo {
	nodes := make([]*nodeView, 0, len(m.nodes))
	for _, n := range m.nodes {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool {
		a, b := nodes[i].s, nodes[j].s
		if a.dc != b.dc {
			return a.dc < b.dc
		}
		if a.rack != b.rack {
			return a.rack < b.rack
		}
		return a.id < b.id
	})
	topo := &master_pb.TopologyInfo{Id: "topo", DiskInfos: map[string]*master_pb.DiskInfo{}}
	var dc *master_pb.DataCenterInfo
	var rack *master_pb.RackInfo
	for _, n := range nodes {
		full, counts := n.build()
		dn := full
		if !f.all {
			var vis []*master_pb.VolumeInformationMessage
			var ecs []*master_pb.VolumeEcShardInformationMessage
			d := full.DiskInfos[n.s.diskType]
			for _, vi := range d.VolumeInfos {
				if f.match(vi.Id, vi.Collection, vi.RemoteStorageName) {
					vis = append(vis, vi)
				}
			}
			for _, ec := range d.EcShardInfos {
				if f.match(ec.Id, ec.Collection, "") {
					ecs = append(ecs, ec)
				}
			}
			dn = &master_pb.DataNodeInfo{Id: full.Id, Address: full.Address, GrpcPort: full.GrpcPort,
				DiskInfos: map[string]*master_pb.DiskInfo{n.s.diskType: diskWithLists(counts, vis, ecs)}}
		}
		if dc == nil || dc.Id != n.s.dc {
			dc = &master_pb.DataCenterInfo{Id: n.s.dc, DiskInfos: map[string]*master_pb.DiskInfo{}}
			topo.DataCenterInfos = append(topo.DataCenterInfos, dc)
			rack = nil
		}
		if rack == nil || rack.Id != n.s.rack {
			rack = &master_pb.RackInfo{Id: n.s.rack, DiskInfos: map[string]*master_pb.DiskInfo{}}
			dc.RackInfos = append(dc.RackInfos, rack)
		}
		rack.DataNodeInfos = append(rack.DataNodeInfos, dn)
		addCounts(rack.DiskInfos, counts)
		addCounts(dc.DiskInfos, counts)
		addCounts(topo.DiskInfos, counts)
	}
	return topo
}

// ---- gRPC ----

type masterHandler struct {
	master_pb.UnimplementedSeaweedServer
	m  *master
	ep *endpoint
}

// leading is nil when this endpoint is the leader, else SeaweedFS's
// follower refusal (raft.NotLeaderError, sent as codes.Unknown).
func (h *masterHandler) leading() error {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.m.up && h.m.leader == h.ep.idx {
		return nil
	}
	return errNotLeader
}

func (h *masterHandler) VolumeList(ctx context.Context, req *master_pb.VolumeListRequest) (*master_pb.VolumeListResponse, error) {
	if err := h.leading(); err != nil {
		return nil, err
	}
	f, err := newVolumeFilter(req)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	m := h.m
	m.mu.Lock()
	topo := m.topologyLocked(f)
	m.mu.Unlock()
	return &master_pb.VolumeListResponse{TopologyInfo: topo, VolumeSizeLimitMb: m.c.cfg.VolumeSizeLimitMB}, nil
}

func (h *masterHandler) LeaseAdminToken(ctx context.Context, req *master_pb.LeaseAdminTokenRequest) (*master_pb.LeaseAdminTokenResponse, error) {
	if err := h.leading(); err != nil {
		return nil, err
	}
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	l := m.locks[req.LockName]
	if l != nil && now.Before(l.at.Add(m.c.cfg.AdminLockDuration)) {
		if req.PreviousToken == 0 || l.token != req.PreviousToken || !l.at.Equal(time.Unix(0, req.PreviousLockTime)) {
			// SeaweedFS never stores the message, so it is always empty here.
			return &master_pb.LeaseAdminTokenResponse{}, fmt.Errorf("already locked by %v: %v", l.client, "")
		}
	}
	nl := &adminLock{token: rand.Int64(), at: time.Unix(0, m.c.nowNs()), client: req.ClientName}
	for nl.token == 0 {
		nl.token = rand.Int64()
	}
	m.locks[req.LockName] = nl
	return &master_pb.LeaseAdminTokenResponse{Token: nl.token, LockTsNs: nl.at.UnixNano()}, nil
}

func (h *masterHandler) ReleaseAdminToken(ctx context.Context, req *master_pb.ReleaseAdminTokenRequest) (*master_pb.ReleaseAdminTokenResponse, error) {
	if err := h.leading(); err != nil {
		return nil, err
	}
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.locks[req.LockName]; l != nil && l.token == req.PreviousToken && l.at.Equal(time.Unix(0, req.PreviousLockTime)) {
		delete(m.locks, req.LockName)
	}
	return &master_pb.ReleaseAdminTokenResponse{}, nil
}

func (h *masterHandler) GetAdminLockStatus(ctx context.Context, req *master_pb.GetAdminLockStatusRequest) (*master_pb.GetAdminLockStatusResponse, error) {
	if err := h.leading(); err != nil {
		return nil, err
	}
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	resp := &master_pb.GetAdminLockStatusResponse{}
	if l := m.locks[req.LockName]; l != nil && time.Now().Before(l.at.Add(m.c.cfg.AdminLockDuration)) {
		resp.IsLocked, resp.ClientName = true, l.client
	}
	return resp, nil
}

func (h *masterHandler) DisableVacuum(ctx context.Context, req *master_pb.DisableVacuumRequest) (*master_pb.DisableVacuumResponse, error) {
	if h.leading() != nil { // a follower sets its own topology, which nobody reads
		return &master_pb.DisableVacuumResponse{}, nil
	}
	m := h.m
	m.mu.Lock()
	if req.ByPlugin {
		m.vacPlugin = true
	} else {
		m.vacOperator = true
	}
	m.mu.Unlock()
	return &master_pb.DisableVacuumResponse{}, nil
}

func (h *masterHandler) EnableVacuum(ctx context.Context, req *master_pb.EnableVacuumRequest) (*master_pb.EnableVacuumResponse, error) {
	if h.leading() != nil { // a follower sets its own topology, which nobody reads
		return &master_pb.EnableVacuumResponse{}, nil
	}
	m := h.m
	m.mu.Lock()
	if req.ByPlugin {
		m.vacPlugin = false
	} else {
		m.vacOperator = false
	}
	m.mu.Unlock()
	return &master_pb.EnableVacuumResponse{}, nil
}

func (h *masterHandler) VolumeMarkReadonly(ctx context.Context, req *master_pb.VolumeMarkReadonlyRequest) (*master_pb.VolumeMarkReadonlyResponse, error) {
	if h.leading() != nil { // a follower sets its own topology, which nobody reads
		return &master_pb.VolumeMarkReadonlyResponse{}, nil
	}
	m := h.m
	addr := net.JoinHostPort(req.Ip, strconv.Itoa(int(req.Port)))
	s, ok := m.c.ServerByAddress(addr)
	if ok {
		m.mu.Lock()
		m.setReadOnlyLocked(s, req.VolumeId, req.IsReadonly)
		m.mu.Unlock()
	}
	return &master_pb.VolumeMarkReadonlyResponse{}, nil
}

func (h *masterHandler) GetMasterConfiguration(ctx context.Context, req *master_pb.GetMasterConfigurationRequest) (*master_pb.GetMasterConfigurationResponse, error) {
	m := h.m
	leader := ""
	m.mu.Lock()
	if m.up && m.leader >= 0 {
		l := m.eps[m.leader]
		leader = l.id + "." + strconv.Itoa(l.grpcPort)
	}
	m.mu.Unlock()
	return &master_pb.GetMasterConfigurationResponse{
		Leader:             leader,
		VolumeSizeLimitMB:  uint32(m.c.cfg.VolumeSizeLimitMB),
		DefaultReplication: "000",
	}, nil
}

func (h *masterHandler) Ping(ctx context.Context, req *master_pb.PingRequest) (*master_pb.PingResponse, error) {
	now := time.Now().UnixNano()
	return &master_pb.PingResponse{StartTimeNs: now, RemoteTimeNs: now, StopTimeNs: now}, nil
}

func (h *masterHandler) LookupVolume(ctx context.Context, req *master_pb.LookupVolumeRequest) (*master_pb.LookupVolumeResponse, error) {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	resp := &master_pb.LookupVolumeResponse{}
	for _, vf := range req.VolumeOrFileIds {
		vs, _, _ := strings.Cut(vf, ",")
		loc := &master_pb.LookupVolumeResponse_VolumeIdLocation{VolumeOrFileId: vf}
		id, err := strconv.ParseUint(vs, 10, 32)
		if err != nil {
			loc.Error = fmt.Sprintf("Unknown volume id %s", vs)
			resp.VolumeIdLocations = append(resp.VolumeIdLocations, loc)
			continue
		}
		for _, n := range m.sortedNodesLocked() {
			if vi := n.vols[uint32(id)]; vi != nil && (req.Collection == "" || req.Collection == vi.Collection) {
				loc.Locations = append(loc.Locations, &master_pb.Location{Url: n.s.id, PublicUrl: n.s.id, GrpcPort: uint32(n.s.grpcPort), DataCenter: n.s.dc})
			}
		}
		if len(loc.Locations) == 0 {
			loc.Error = fmt.Sprintf("volumeId %s not found", vs)
		}
		resp.VolumeIdLocations = append(resp.VolumeIdLocations, loc)
	}
	return resp, nil
}

func (h *masterHandler) LookupEcVolume(ctx context.Context, req *master_pb.LookupEcVolumeRequest) (*master_pb.LookupEcVolumeResponse, error) {
	if err := h.leading(); err != nil {
		return nil, err
	}
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	resp := &master_pb.LookupEcVolumeResponse{VolumeId: req.VolumeId}
	byShard := map[uint32][]*master_pb.Location{}
	for _, n := range m.sortedNodesLocked() {
		if ec := n.ecs[req.VolumeId]; ec != nil {
			for _, sh := range shardList(ec.EcIndexBits) {
				byShard[sh] = append(byShard[sh], &master_pb.Location{Url: n.s.id, PublicUrl: n.s.id, GrpcPort: uint32(n.s.grpcPort), DataCenter: n.s.dc})
			}
		}
	}
	if len(byShard) == 0 {
		return resp, fmt.Errorf("ec volume %d not found", req.VolumeId)
	}
	for sh := uint32(0); sh < 32; sh++ {
		if locs := byShard[sh]; locs != nil {
			resp.ShardIdLocations = append(resp.ShardIdLocations, &master_pb.LookupEcVolumeResponse_EcShardIdLocation{ShardId: sh, Locations: locs})
		}
	}
	return resp, nil
}

func (m *master) sortedNodesLocked() []*nodeView {
	nodes := make([]*nodeView, 0, len(m.nodes))
	for _, n := range m.nodes {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].s.id < nodes[j].s.id })
	return nodes
}
