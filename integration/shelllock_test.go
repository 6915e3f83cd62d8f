package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// syncBuffer is a bytes.Buffer safe to write from exec's copying goroutine
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWeedShellDuringMaintenance: an operator uses a real `weed shell`
// while groundskeeper maintains the cluster. A `weed shell` that typed
// `lock` gets the lock at once (we hold only `admin-server`, never
// `shell`), and while it holds it the leader detects and assigns nothing:
// `ctl status` names the shell's holder, the garbage volume stays
// unvacuumed. After `volume.list; unlock` the shell exits 0 and the vacuum
// runs; every remaining file reads back. A second `lock; volume.list;
// unlock` run while groundskeeper keeps maintaining succeeds too, and a
// command that changes the cluster typed without `lock` is refused in
// SeaweedFS's one line.
func TestWeedShellDuringMaintenance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real SeaweedFS cluster, weed shell, three admins and a worker")
	}
	wc := startWeedCluster(t, 2)
	bin := weedBinary(t)

	a, vid := wc.assignWithin(t, 60*time.Second, "shell", 20, 64<<10+4<<10)
	files := wc.writeAssigned(t, a, vid, 20, 64<<10, 7)
	wc.deleteFiles(t, a.URL, files[:10])
	wc.waitTopology(t, "the master to reflect the deletions", func(topo *seaweed.Topology) (bool, string) {
		v := topo.Volumes[vid]
		return v != nil && v.GarbageRatio() >= 0.3, fmt.Sprintf("volume %d: %+v", vid, v)
	})
	shellLock := func() (string, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := wc.mc.GetAdminLockStatus(ctx, &master_pb.GetAdminLockStatusRequest{LockName: seaweed.ShellLockName})
		if err != nil {
			return err.Error(), false
		}
		return resp.ClientName, resp.IsLocked
	}

	// The operator's shell: `lock`, then it waits for more input.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	shell := exec.CommandContext(ctx, bin, "shell", "-master="+wc.masterHTTP)
	shell.SysProcAttr = childAttr()
	stdin, err := shell.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	shell.Stdout, shell.Stderr = &out, &out
	if err := shell.Start(); err != nil {
		t.Fatalf("start weed shell: %v", err)
	}
	shellDone := make(chan error, 1)
	go func() { shellDone <- shell.Wait() }()
	t.Cleanup(func() { _ = stdin.Close(); cancel(); <-shellDone })
	if _, err := io.WriteString(stdin, "lock\n"); err != nil {
		t.Fatal(err)
	}
	var holder string
	testutil.Poll(t, 60*time.Second, pollEvery, "weed shell to hold the shell lock", func() (bool, string) {
		h, held := shellLock()
		holder = h
		return held, fmt.Sprintf("held %v by %q; shell says %q", held, h, out.String())
	})

	admins := newCluster(t, 3)
	for _, nd := range admins.nodes {
		nd.startArgs(t, append(nd.args(), "--master", wc.masterHTTP, "--detect-interval", "1s",
			"--vacuum-garbage-threshold", "0.3", "--balance-imbalance-threshold", "1000")...)
	}
	admins.waitStable(t, admins.nodes...)
	addrs := strings.Join(admins.addrs(), ",")
	startWorkers(t, 1, admins.addrs())

	// Five detection rounds while the shell holds its lock: each would
	// have vacuumed the volume.
	st := fivePolls(t, addrs, "weed shell", "ours")
	if m := st.Maintenance; m.ShellLockHolder != holder || !m.DetectionPaused || !m.AssignmentPaused ||
		!strings.Contains(m.Paused, `"shell"`) || !strings.Contains(m.Paused, holder) {
		t.Errorf("ctl status while weed shell holds the lock: %+v; want the shell lock held by %q, both paused", *m, holder)
	}
	if text := ctl(t, addrs, "status"); !strings.Contains(text.Stdout, "shell lock HELD BY "+holder) ||
		!strings.Contains(text.Stdout, "MAINTENANCE PAUSED") {
		t.Errorf("ctl status does not say who holds the shell lock and that maintenance is paused:\n%s", text.Stdout)
	}
	if tasks := ctlJSON[[]sysTask](t, "tasks", addrs, "tasks"); len(tasks) != 0 {
		t.Fatalf("tasks while weed shell holds the lock: %s; want none detected", joinTasks(tasks))
	}
	if v, _, err := wc.masterVolume(vid); err != nil || v == nil || v.DeletedByteCount == 0 {
		t.Fatalf("volume %d while weed shell holds the lock: %+v (%v); want its garbage untouched", vid, v, err)
	}

	// The operator finishes: volume.list works, unlock, end of input.
	unlocked := time.Now()
	if _, err := io.WriteString(stdin, "volume.list\nunlock\n"); err != nil {
		t.Fatal(err)
	}
	_ = stdin.Close()
	select {
	case err := <-shellDone:
		shellDone <- err
		if err != nil {
			t.Fatalf("weed shell: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("weed shell did not exit 60 s after unlock and end of input:\n%s", out.String())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("volume Id:%d,", vid)) {
		t.Errorf("weed shell's volume.list does not list volume %d:\n%s", vid, out.String())
	}
	testutil.Poll(t, 90*time.Second, pollEvery, "the vacuum to complete once the shell unlocks", func() (bool, string) {
		tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", addrs, "tasks")
		if err != nil {
			return false, err.Error()
		}
		for _, tk := range tasks {
			if tk.VolumeID == vid && tk.Type == "vacuum" && tk.State == "completed" {
				return true, tk.String()
			}
		}
		return false, joinTasks(tasks)
	})
	t.Logf("the vacuum completed %s after the shell unlocked", time.Since(unlocked).Round(10*time.Millisecond))
	wc.checkFiles(t, files[10:], a.URL)

	// A shell command run while groundskeeper maintains the cluster (the
	// leader holds admin-server): it takes `shell` at once and succeeds.
	sctx, scancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer scancel()
	again := exec.CommandContext(sctx, bin, "shell", "-master="+wc.masterHTTP)
	again.SysProcAttr = childAttr()
	again.Stdin = strings.NewReader("lock; volume.list; unlock\n")
	started := time.Now()
	b, err := again.CombinedOutput()
	if err != nil || !strings.Contains(string(b), fmt.Sprintf("volume Id:%d,", vid)) {
		t.Fatalf("`lock; volume.list; unlock` during maintenance: %v\n%s", err, b)
	}
	t.Logf("`lock; volume.list; unlock` took %s while groundskeeper maintains the cluster", time.Since(started).Round(10*time.Millisecond))

	// A command that changes the cluster, typed without `lock`: SeaweedFS
	// refuses it in one line, and it changes nothing.
	nolock := exec.CommandContext(sctx, bin, "shell", "-master="+wc.masterHTTP)
	nolock.SysProcAttr = childAttr()
	nolock.Stdin = strings.NewReader("volume.vacuum.disable\n")
	b, _ = nolock.CombinedOutput()
	if !strings.Contains(string(b), `need to run "lock" first to continue`) {
		t.Errorf("volume.vacuum.disable without lock: want SeaweedFS's refusal, got:\n%s", b)
	}
	wc.checkFiles(t, files[10:], a.URL)
}
