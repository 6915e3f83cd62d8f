package seaweed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// A SeaweedFS cluster runs one or several masters (`weed master -peers`),
// of which one leads (raft). VolumeList, the admin locks and every other
// call we make that matters answer only on the master leader; followers
// refuse with raft's "Not current leader" (EnableVacuum and DisableVacuum
// are accepted anywhere but act only on the leader). Master therefore
// keeps a connection to every master given, routes each call to the master
// it believes leads, and on a refusal or an unreachable leader finds the
// leader again and retries the call once there:
//
//   - every master is asked in parallel for its configuration, whose
//     Leader field names the leader as it sees it (SeaweedFS's own clients
//     learn it the same way, from KeepConnected, wdclient/masterclient.go);
//   - the named masters, most named first, then every other master that
//     answered, are tried with a leader-only call (GetAdminLockStatus):
//     the first that answers leads. The names are only an ordering hint,
//     since an operator may give a master by a name other than the one
//     raft uses.
//
// While no master leads (an election, a lost quorum) every call fails with
// ErrNoMasterLeader, and the scheduler pauses as it does for a single
// unreachable master.

// ErrNoMasterLeader: none of the masters answered as the master leader.
var ErrNoMasterLeader = errors.New("no SeaweedFS master leads")

// Master states as MasterStatus reports them.
const (
	MasterLeader      = "leader"
	MasterFollower    = "follower"
	MasterUnreachable = "unreachable"
	MasterUnknown     = "unknown" // not asked yet
)

// MasterStatus is one master as last seen.
type MasterStatus struct {
	Addr Address
	// State is MasterLeader (the master calls go to), MasterFollower (it
	// answers but refused a leader-only call, or another master leads),
	// MasterUnreachable or MasterUnknown.
	State string
	// Leader is the master leader this master last named ("" if none).
	Leader string
	// Err is why it is unreachable.
	Err string
	// Seen is when it last answered or failed to.
	Seen time.Time
}

// Discovery timing: each master gets probeTimeout to answer a discovery
// call; with several masters, every surveyEvery (at most, triggered by
// topology polls) all are asked in the background so the status of the
// followers stays current.
const (
	probeTimeout = 3 * time.Second
	surveyEvery  = 10 * time.Second
)

type masterConn struct {
	addr Address
	conn *grpc.ClientConn
	c    master_pb.SeaweedClient
}

// Master talks to a SeaweedFS cluster's masters over gRPC, following the
// master leader.
type Master struct {
	conns []*masterConn
	now   func() time.Time

	bg     context.Context // background surveys; ended by Close
	stop   context.CancelFunc
	wg     sync.WaitGroup
	findMu sync.Mutex // one discovery at a time

	mu         sync.Mutex
	leader     int // index into conns; -1: none known
	seen       []MasterStatus
	lastSurvey time.Time
	surveying  bool
	// followed is the master last made leader (-1: none yet); epoch counts
	// its changes to another master, when, and moved is closed (and
	// replaced) on each. The admin lock counts as ours only within the
	// epoch that granted it: a lease lives in one master leader's memory.
	followed int
	epoch    uint64
	movedAt  time.Time
	moved    chan struct{}
}

// ParseMasters parses --master: a comma-separated list of masters, each
// host:port or host:port.grpcPort. An empty entry or a master given twice
// is an error.
func ParseMasters(list string) ([]Address, error) {
	var out []Address
	for i, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("entry %d of %q is empty", i+1, list)
		}
		a, err := ParseAddress(part)
		if err != nil {
			return nil, err
		}
		for _, b := range out {
			if a.HTTP == b.HTTP || a.GRPC == b.GRPC {
				return nil, fmt.Errorf("master %s is given twice in %q", a.HTTP, list)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// DialMaster prepares a client for the masters given as a comma-separated
// list (see ParseMasters). Nothing is contacted yet. The connections are
// plaintext unless opts say otherwise (Security.DialOptions).
func DialMaster(list string, opts ...grpc.DialOption) (*Master, error) {
	addrs, err := ParseMasters(list)
	if err != nil {
		return nil, fmt.Errorf("--master: %w", err)
	}
	m := &Master{now: time.Now, leader: -1, followed: -1, moved: make(chan struct{})}
	m.bg, m.stop = context.WithCancel(context.Background())
	for _, a := range addrs {
		conn, err := grpc.NewClient(a.GRPC, append([]grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxTopologyMessage))}, opts...)...)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("dial master %s: %w", a.GRPC, err)
		}
		m.conns = append(m.conns, &masterConn{addr: a, conn: conn, c: master_pb.NewSeaweedClient(conn)})
		m.seen = append(m.seen, MasterStatus{Addr: a, State: MasterUnknown})
	}
	if len(m.conns) == 1 {
		// The only master is where every call goes, leader or not.
		m.leader = 0
	}
	return m, nil
}

// Addr is the master leader's address as last known (the first master
// given while none is).
func (m *Master) Addr() Address {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader >= 0 {
		return m.conns[m.leader].addr
	}
	return m.conns[0].addr
}

// Masters is every master given, in order, as last seen.
func (m *Master) Masters() []MasterStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]MasterStatus(nil), m.seen...)
}

// Close stops background surveys and closes the connections.
func (m *Master) Close() error {
	m.mu.Lock() // no survey starts after this
	m.stop()
	m.mu.Unlock()
	m.wg.Wait()
	var errs []error
	for _, c := range m.conns {
		errs = append(errs, c.conn.Close())
	}
	return errors.Join(errs...)
}

// call runs fn against the master leader. If the leader refuses ("not
// leader") or cannot be reached, and there are other masters, it finds the
// leader again and runs fn once more there. leaderOnly says whether fn's
// call is one only the master leader answers (then an answer confirms the
// master leads; EnableVacuum and DisableVacuum also succeed on followers).
func (m *Master) call(ctx context.Context, what string, leaderOnly bool, fn func(context.Context, master_pb.SeaweedClient) error) error {
	_, _, err := m.callAt(ctx, what, leaderOnly, fn)
	return err
}

// callAt is call, also telling, on success, the epoch of the master leader
// that answered and whether it is still the one followed.
func (m *Master) callAt(ctx context.Context, what string, leaderOnly bool, fn func(context.Context, master_pb.SeaweedClient) error) (epoch uint64, followed bool, err error) {
	i, err := m.leaderIndex(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", what, err)
	}
	err = explainRefusal(fn(ctx, m.conns[i].c))
	epoch, followed = m.observe(i, err, leaderOnly)
	if err == nil || len(m.conns) == 1 || ctx.Err() != nil || !movesOn(err) {
		if err != nil {
			return 0, false, fmt.Errorf("master %s: %s: %w", m.conns[i].addr.HTTP, what, err)
		}
		return epoch, followed, nil
	}
	first := fmt.Errorf("master %s: %w", m.conns[i].addr.HTTP, err)
	j, derr := m.find(ctx, i)
	if derr != nil {
		return 0, false, fmt.Errorf("%s: %v, and %w", what, first, derr)
	}
	err = explainRefusal(fn(ctx, m.conns[j].c))
	epoch, followed = m.observe(j, err, leaderOnly)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %v, then master %s: %w", what, first, m.conns[j].addr.HTTP, err)
	}
	return epoch, followed, nil
}

// leaderEpoch is the current epoch of the followed master leader (see
// Master.followed), when it began, and a channel closed when it ends.
func (m *Master) leaderEpoch() (epoch uint64, since time.Time, moved <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.epoch, m.movedAt, m.moved
}

// LeaderEpoch counts the master leaders followed so far: it changes when
// calls move to another master leader, whose topology refills as the volume
// servers re-register with it (see RefillGuard.LeaderChanged).
func (m *Master) LeaderEpoch() uint64 {
	e, _, _ := m.leaderEpoch()
	return e
}

// leaderIndex is the master calls go to, found first if none is known.
func (m *Master) leaderIndex(ctx context.Context) (int, error) {
	m.mu.Lock()
	i := m.leader
	m.mu.Unlock()
	if i >= 0 {
		return i, nil
	}
	return m.find(ctx, -1)
}

// movesOn reports whether err says the master called is not (or no
// longer) the one to call: it is not the leader, or it does not answer.
func movesOn(err error) bool {
	return notLeader(err) || status.Code(err) == codes.Unavailable
}

// notLeader reports whether err is a master's refusal as a follower
// (raft.NotLeaderError, "raft.Server: Not current leader").
func notLeader(err error) bool {
	if err == nil {
		return false
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "not current leader") || strings.Contains(msg, "not leader")
}

// observe records what a call to master i said about it: an answer to a
// leader-only call confirms it leads, unless a concurrent search has moved
// on to another master meanwhile; a refusal as a follower or an
// unreachable master means it does not (and is forgotten as leader).
// Other errors, and answers to calls followers also answer, say nothing
// about leadership. It returns the leader epoch, and whether master i is
// the leader followed now.
func (m *Master) observe(i int, err error, leaderOnly bool) (epoch uint64, followed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.seen[i]
	switch {
	case err == nil:
		if leaderOnly && (m.leader == i || m.leader < 0) {
			m.setLeader(i)
		}
	case notLeader(err):
		s.State, s.Err, s.Seen = MasterFollower, "", m.now()
		if m.leader == i && len(m.conns) > 1 {
			m.leader = -1
		}
	case status.Code(err) == codes.Unavailable, status.Code(err) == codes.DeadlineExceeded:
		// A master that does not answer in time (its machine gone, a
		// partition: nothing refuses the connection) is as good as
		// unreachable: the next call looks for the leader again rather
		// than wait on it once more. The caller's own deadline may have
		// been short; then the search finds the same leader again.
		s.State, s.Err, s.Seen = MasterUnreachable, unreachableReason(err), m.now()
		if m.leader == i && len(m.conns) > 1 {
			m.leader = -1
		}
	}
	return m.epoch, m.leader == i
}

// setLeader makes master i the one calls go to. Call with m.mu held.
func (m *Master) setLeader(i int) {
	if i != m.followed {
		m.followed, m.epoch, m.movedAt = i, m.epoch+1, m.now()
		close(m.moved)
		m.moved = make(chan struct{})
	}
	for j := range m.seen {
		if j != i && m.seen[j].State == MasterLeader {
			m.seen[j].State = MasterFollower
		}
	}
	m.leader = i
	m.seen[i].State, m.seen[i].Err, m.seen[i].Seen = MasterLeader, "", m.now()
}

// named is the index of the master a Leader field names, or -1. Masters
// are matched by their HTTP address (raft names a master host:port, or
// host:port.grpcPort).
func (m *Master) named(leader string) int {
	if leader == "" {
		return -1
	}
	a, err := ParseAddress(leader)
	for i, c := range m.conns {
		if leader == c.addr.HTTP || (err == nil && a.HTTP == c.addr.HTTP) {
			return i
		}
	}
	return -1
}

// survey asks every master in parallel who leads, records the answers and
// returns them (err[i] nil: master i answered, naming leader[i]).
func (m *Master) survey(ctx context.Context) (leader []string, errs []error) {
	leader, errs = make([]string, len(m.conns)), make([]error, len(m.conns))
	var wg sync.WaitGroup
	for i, c := range m.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			resp, err := c.c.GetMasterConfiguration(pctx, &master_pb.GetMasterConfigurationRequest{})
			leader[i], errs[i] = resp.GetLeader(), err
		}()
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, err := range errs {
		s := &m.seen[i]
		if err != nil {
			if ctx.Err() == nil {
				s.State, s.Err, s.Leader, s.Seen = MasterUnreachable, unreachableReason(err), "", m.now()
				if m.leader == i && len(m.conns) > 1 {
					m.leader = -1
				}
			}
			continue
		}
		s.Leader, s.Err, s.Seen = leader[i], "", m.now()
		if m.leader != i {
			s.State = MasterFollower
		}
	}
	m.lastSurvey = m.now()
	return leader, errs
}

// find looks for the master leader (see the comment at the top) and makes
// it the one calls go to. A leader other than failed found by a concurrent
// call while this one waited is taken as is.
func (m *Master) find(ctx context.Context, failed int) (int, error) {
	m.findMu.Lock()
	defer m.findMu.Unlock()
	m.mu.Lock()
	known := m.leader
	m.mu.Unlock()
	if known >= 0 && known != failed {
		return known, nil
	}
	leader, errs := m.survey(ctx)
	votes := make([]int, len(m.conns))
	for i, l := range leader {
		if errs[i] == nil {
			if j := m.named(l); j >= 0 {
				votes[j]++
			}
		}
	}
	var order []int
	for v := len(m.conns); v > 0; v-- {
		for i := range m.conns {
			if votes[i] == v && errs[i] == nil {
				order = append(order, i)
			}
		}
	}
	for i := range m.conns {
		if votes[i] == 0 && errs[i] == nil {
			order = append(order, i)
		}
	}
	for _, i := range order {
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		_, err := m.conns[i].c.GetAdminLockStatus(pctx, &master_pb.GetAdminLockStatusRequest{LockName: AdminLockName})
		cancel()
		if err == nil {
			m.mu.Lock()
			m.setLeader(i)
			m.mu.Unlock()
			return i, nil
		}
		m.observe(i, err, true)
		if !movesOn(err) {
			// It answered, but not as either: record it as not leading.
			m.mu.Lock()
			m.seen[i].State, m.seen[i].Err = MasterFollower, status.Convert(err).Message()
			m.mu.Unlock()
		}
	}
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("%w: %w", ErrNoMasterLeader, err)
	}
	return -1, fmt.Errorf("%w (%s)", ErrNoMasterLeader, m.describe())
}

// describe lists the masters' states, for errors. When every master is
// unreachable for the same reason (a certificate the cluster refuses, a
// plaintext dial of a TLS cluster), the reason is said once.
func (m *Master) describe() string {
	ms := m.Masters()
	if len(ms) > 1 {
		same := true
		var names []string
		for _, s := range ms {
			names = append(names, s.Addr.HTTP)
			same = same && s.State == MasterUnreachable && s.Err != "" && reasonKey(s) == reasonKey(ms[0])
		}
		if same {
			return fmt.Sprintf("all %d masters (%s) unreachable, %s: %s", len(ms), strings.Join(names, ", "), ms[0].Addr.HTTP, ms[0].Err)
		}
	}
	var parts []string
	for _, s := range ms {
		p := s.Addr.HTTP + " " + s.State
		if s.Err != "" {
			p += ": " + s.Err
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

// unreachableReason is why a master did not answer, as status shows it.
func unreachableReason(err error) string {
	return explainRefusal(errors.New(status.Convert(err).Message())).Error()
}

// reasonKey is what two masters failing for the same reason share: s's
// error with its own addresses taken out and without the transport's own
// words after an explanation of ours (a refused plaintext dial ends in
// "EOF" from one master and "connection reset by peer" from another).
func reasonKey(s MasterStatus) string {
	r := withoutAddr(s)
	if i := strings.Index(r, " (connection error:"); i > 0 {
		r = r[:i]
	}
	return r
}

// withoutAddr is s's error with its own addresses taken out, so that two
// masters failing for the same reason compare equal.
func withoutAddr(s MasterStatus) string {
	return strings.ReplaceAll(strings.ReplaceAll(s.Err, s.Addr.GRPC, ""), s.Addr.HTTP, "")
}

// maybeSurvey starts a background survey of the masters when the last one
// is older than surveyEvery, so Masters stays current for followers no
// call goes to.
func (m *Master) maybeSurvey() {
	if len(m.conns) < 2 {
		return
	}
	m.mu.Lock()
	if m.surveying || m.now().Sub(m.lastSurvey) < surveyEvery || m.bg.Err() != nil {
		m.mu.Unlock()
		return
	}
	m.surveying = true
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		m.survey(m.bg)
		m.mu.Lock()
		m.surveying = false
		m.mu.Unlock()
	}()
}
