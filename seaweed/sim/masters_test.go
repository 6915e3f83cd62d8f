package sim

import (
	"strings"
	"testing"
	"time"

	mpb "github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

const notLeaderText = "raft.Server: Not current leader"

func masterClients(t *testing.T, c *Cluster) []mpb.SeaweedClient {
	t.Helper()
	var out []mpb.SeaweedClient
	for _, a := range c.MasterServerAddresses() {
		out = append(out, mpb.NewSeaweedClient(dial(t, a.GRPC)))
	}
	return out
}

// leaderNamed is what GetMasterConfiguration on mc names as the leader. It
// waits for the connection (a revived master's client may be in backoff).
func leaderNamed(t *testing.T, mc mpb.SeaweedClient) string {
	t.Helper()
	resp, err := mc.GetMasterConfiguration(ctxT(t), &mpb.GetMasterConfigurationRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("GetMasterConfiguration: %v", err)
	}
	return resp.Leader
}

// waitLeader polls until master want leads.
func waitLeader(t *testing.T, c *Cluster, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.MasterLeader() != want {
		if time.Now().After(deadline) {
			t.Fatalf("master %d never became the leader (leader %d)", want, c.MasterLeader())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// refusesAsFollower checks that every leader-only call on mc gets
// SeaweedFS's follower refusal.
func refusesAsFollower(t *testing.T, mc mpb.SeaweedClient) {
	t.Helper()
	ctx := ctxT(t)
	_, err := mc.VolumeList(ctx, &mpb.VolumeListRequest{})
	wantErr(t, err, codes.Unknown, notLeaderText)
	_, err = mc.LeaseAdminToken(ctx, &mpb.LeaseAdminTokenRequest{LockName: "admin", ClientName: "x"})
	wantErr(t, err, codes.Unknown, notLeaderText)
	_, err = mc.GetAdminLockStatus(ctx, &mpb.GetAdminLockStatusRequest{LockName: "admin"})
	wantErr(t, err, codes.Unknown, notLeaderText)
	_, err = mc.ReleaseAdminToken(ctx, &mpb.ReleaseAdminTokenRequest{LockName: "admin", PreviousToken: 1})
	wantErr(t, err, codes.Unknown, notLeaderText)
	_, err = mc.LookupEcVolume(ctx, &mpb.LookupEcVolumeRequest{VolumeId: 1})
	wantErr(t, err, codes.Unknown, notLeaderText)
	// Followers accept the vacuum switches (on their own, unused topology).
	if _, err := mc.DisableVacuum(ctx, &mpb.DisableVacuumRequest{}); err != nil {
		t.Fatalf("DisableVacuum on a follower: %v", err)
	}
}

func TestMastersFollowersRefuseAndNameTheLeader(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, Masters: 3})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: mib, Servers: []int{0}}))
	c.Flush()
	addrs := c.MasterServerAddresses()
	if len(addrs) != 3 || c.MasterLeader() != 0 {
		t.Fatalf("want 3 masters led by 0, got %d led by %d", len(addrs), c.MasterLeader())
	}
	mcs := masterClients(t, c)
	for i, mc := range mcs {
		if got := leaderNamed(t, mc); got != addrs[0].String() {
			t.Fatalf("master %d names leader %q, want %q", i, got, addrs[0].String())
		}
	}
	if len(topology(t, mcs[0]).Volumes) != 1 {
		t.Fatal("the leader must list volume 1")
	}
	refusesAsFollower(t, mcs[1])
	refusesAsFollower(t, mcs[2])
	if off, _ := c.VacuumDisabled(); off {
		t.Fatal("a follower's DisableVacuum must not reach the leader's switch")
	}
}

func TestMastersKillLeaderMovesLeadershipAndLosesLocks(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, Masters: 3, MasterElectionDelay: 50 * time.Millisecond, MasterRefillDelay: 50 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: mib, Servers: []int{0}}))
	c.Flush()
	addrs := c.MasterServerAddresses()
	mcs := masterClients(t, c)
	ctx := ctxT(t)
	must[*mpb.LeaseAdminTokenResponse](t)(mcs[0].LeaseAdminToken(ctx, &mpb.LeaseAdminTokenRequest{LockName: "admin", ClientName: "gk"}))
	if who, held := c.AdminLock("admin"); !held || who != "gk" {
		t.Fatalf("lock held by %q (%v), want gk", who, held)
	}

	ok(t, c.KillMaster(0))
	if _, held := c.AdminLock("admin"); held {
		t.Fatal("the admin lock lives in the dead leader's memory and must be gone")
	}
	_, err := mcs[0].GetMasterConfiguration(ctx, &mpb.GetMasterConfigurationRequest{})
	wantErr(t, err, codes.Unavailable, "")
	waitLeader(t, c, 1)
	if got := leaderNamed(t, mcs[2]); got != addrs[1].String() {
		t.Fatalf("master 2 names leader %q, want %q", got, addrs[1].String())
	}
	refusesAsFollower(t, mcs[2])
	// A fresh lease on the new leader: nobody holds the lock there.
	must[*mpb.LeaseAdminTokenResponse](t)(mcs[1].LeaseAdminToken(ctx, &mpb.LeaseAdminTokenRequest{LockName: "admin", ClientName: "other"}))
	// The new leader hears from the volume servers again.
	deadline := time.Now().Add(10 * time.Second)
	for len(topology(t, mcs[1]).Volumes) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the new leader never listed volume 1")
		}
		time.Sleep(5 * time.Millisecond)
	}

	ok(t, c.ReviveMaster(0))
	if got := leaderNamed(t, mcs[0]); got != addrs[1].String() {
		t.Fatalf("the revived master names leader %q, want %q", got, addrs[1].String())
	}
	refusesAsFollower(t, mcs[0])
	if !c.MasterUp() {
		t.Fatal("every master is back and one leads: MasterUp must say so")
	}
}

func TestMastersStepDownAndLeaderlessElection(t *testing.T) {
	// The leaderless window must outlast a few loopback calls on a loaded
	// machine: at 20 ms a CI run saw the election done before the check.
	c := newCluster(t, Config{Servers: 1, Masters: 2, MasterElectionDelay: 1500 * time.Millisecond})
	mcs := masterClients(t, c)
	ctx := ctxT(t)
	must[*mpb.LeaseAdminTokenResponse](t)(mcs[0].LeaseAdminToken(ctx, &mpb.LeaseAdminTokenRequest{LockName: "admin", ClientName: "gk"}))
	ok(t, c.StepDown())
	if c.MasterLeader() != -1 {
		t.Fatal("no master leads during the election")
	}
	// While leaderless, every master refuses and names nobody.
	refusesAsFollower(t, mcs[0])
	if got := leaderNamed(t, mcs[0]); got != "" {
		t.Fatalf("leaderless master names %q", got)
	}
	waitLeader(t, c, 1)
	refusesAsFollower(t, mcs[0]) // stepped down: a follower now
	st := must[*mpb.GetAdminLockStatusResponse](t)(mcs[1].GetAdminLockStatus(ctx, &mpb.GetAdminLockStatusRequest{LockName: "admin"}))
	if st.IsLocked {
		t.Fatal("the lock must be lost with the old leader's term")
	}

	// Both dead: nobody leads until one comes back.
	ok(t, c.KillMaster(0))
	ok(t, c.KillMaster(1))
	if c.MasterLeader() != -1 {
		t.Fatal("no master can lead with all of them dead")
	}
	ok(t, c.ReviveMaster(1))
	waitLeader(t, c, 1)
	if err := c.KillMaster(5); err == nil || !strings.Contains(err.Error(), "no master 5") {
		t.Fatalf("KillMaster(5): %v", err)
	}
}

// The project's master client follows the sim's leader.
func TestMastersClientFollowsLeader(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, Masters: 3, MasterElectionDelay: 50 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: mib, Servers: []int{0}}))
	c.Flush()
	var list []string
	for _, a := range c.MasterServerAddresses() {
		list = append(list, a.String())
	}
	m, err := seaweed.DialMaster(strings.Join(list, ","))
	ok(t, err)
	t.Cleanup(func() { m.Close() })
	ctx := ctxT(t)
	if _, err := m.Topology(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Addr() != c.MasterServerAddresses()[0] {
		t.Fatalf("client follows %v, want master 0", m.Addr())
	}
	ok(t, c.KillMaster(0))
	waitLeader(t, c, 1)
	if _, err := m.Topology(ctx); err != nil {
		t.Fatalf("Topology after the leader moved: %v", err)
	}
	if m.Addr() != c.MasterServerAddresses()[1] {
		t.Fatalf("client follows %v, want master 1", m.Addr())
	}
}
