package admin_test

import (
	"context"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// TestSystemShellLockHeldAroundAttempts: three admins, a worker and a
// simulated SeaweedFS whose vacuums take seconds. While the vacuum runs
// the leader holds SeaweedFS's shell lock; the leader is stopped midway
// and the new leader takes the lock for the attempt it inherits; a shell
// client asking meanwhile (as `weed shell`'s `lock` does) gets it only
// after the vacuum completed and the leader released it, and nothing new
// goes out while the shell holds it; after its unlock the next vacuum
// runs, under our lock again.
func TestSystemShellLockHeldAroundAttempts(t *testing.T) {
	simCfg := admintest.SimConfig(2)
	simCfg.CompactDuration = 6 * time.Second
	s := admintest.NewSystem(t, simCfg)
	sc := admintest.SchedConfig()
	sc.HoldShellLock = true
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	s.WaitConnected("w1")

	conn, err := grpc.NewClient(s.Sim.MasterServerAddress().GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mc := master_pb.NewSeaweedClient(conn)
	holder := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		resp, err := mc.GetAdminLockStatus(ctx, &master_pb.GetAdminLockStatusRequest{LockName: seaweed.ShellLockName})
		if err != nil {
			return err.Error()
		}
		if !resp.IsLocked {
			return ""
		}
		return resp.ClientName
	}
	if h := holder(); h != "" {
		t.Fatalf("shell lock held by %q with nothing to do", h)
	}

	garbage := sim.VolumeSpec{Size: 4 << 20, FileCount: 400, DeletedBytes: 2 << 20, DeleteCount: 200, Servers: []int{0}}
	vid, err := s.Sim.AddVolume(garbage)
	if err != nil {
		t.Fatal(err)
	}
	task := s.WaitTask(vid, "the vacuum running", func(t *fsmpb.Task) bool { return t.State == fsmpb.TaskState_TASK_STATE_RUNNING })
	lead := s.Leader()
	if h := holder(); h != "groundskeeper "+s.Cfgs[lead].ID {
		t.Fatalf("shell lock held by %q while the vacuum runs; want groundskeeper %s", h, s.Cfgs[lead].ID)
	}

	// The leader goes; the new one holds the lock for the inherited attempt.
	s.StopNode(lead)
	next := s.WaitLeader()
	testutil.EventuallyTrue(t, admintest.Wait, "the new leader to hold the shell lock for the running vacuum", func() bool {
		return holder() == "groundskeeper "+s.Cfgs[next].ID
	})
	if tk := s.Task(task.Id); !admintest.Active(tk) {
		t.Fatalf("the vacuum ended before the new leader held the lock (%s): make CompactDuration longer", tk.State)
	}

	// A shell asks every 500 ms, as `weed shell`'s lock does.
	var token, ts int64
	var gotAt time.Time
	testutil.EventuallyTrue(t, admintest.Wait, "the shell to get the lock", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		resp, err := mc.LeaseAdminToken(ctx, &master_pb.LeaseAdminTokenRequest{LockName: seaweed.ShellLockName, ClientName: "shell"})
		if err != nil {
			return false
		}
		gotAt, token, ts = time.Now(), resp.Token, resp.LockTsNs
		if tk := s.Task(task.Id); tk.State != fsmpb.TaskState_TASK_STATE_COMPLETED {
			t.Fatalf("the shell got the lock while the vacuum is %s", tk.State)
		}
		return true
	})
	renew := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		resp, err := mc.LeaseAdminToken(ctx, &master_pb.LeaseAdminTokenRequest{LockName: seaweed.ShellLockName, ClientName: "shell", PreviousToken: token, PreviousLockTime: ts})
		if err != nil {
			t.Fatalf("renew the shell's lock: %v", err)
		}
		token, ts = resp.Token, resp.LockTsNs
	}
	t.Logf("the shell got the lock %s after the vacuum completed", gotAt.Sub(time.Unix(0, s.Task(task.Id).FinishedAt)).Round(time.Millisecond))

	// While the shell holds it, a second garbage volume waits.
	garbage.Servers = []int{1}
	second, err := s.Sim.AddVolume(garbage)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ { // five seconds of detection rounds (1 s each)
		time.Sleep(500 * time.Millisecond)
		renew()
		for _, tk := range s.TasksFor(second) {
			if tk.State != fsmpb.TaskState_TASK_STATE_PENDING {
				t.Fatalf("while the shell holds the lock: the second vacuum is %s", tk.State)
			}
		}
	}

	// The shell unlocks: the second vacuum goes out under our lock.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err = mc.ReleaseAdminToken(ctx, &master_pb.ReleaseAdminTokenRequest{LockName: seaweed.ShellLockName, PreviousToken: token, PreviousLockTime: ts})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	s.WaitTask(second, "the second vacuum running", func(t *fsmpb.Task) bool { return t.State == fsmpb.TaskState_TASK_STATE_RUNNING })
	if h, lead := holder(), s.Leader(); lead < 0 || h != "groundskeeper "+s.Cfgs[lead].ID {
		t.Fatalf("shell lock held by %q while the second vacuum runs", h)
	}
	s.WaitTask(second, "the second vacuum completed", func(t *fsmpb.Task) bool { return t.State == fsmpb.TaskState_TASK_STATE_COMPLETED })
	testutil.EventuallyTrue(t, admintest.Wait, "the shell lock released with nothing in flight", func() bool { return holder() == "" })
}
