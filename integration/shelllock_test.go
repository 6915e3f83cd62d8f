package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
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
// `lock` before groundskeeper started gets the lock at once, and while it holds it the leader detects and assigns nothing:
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
	// leader holds admin-server, and `shell` only while its attempts run):
	// it gets `shell` and succeeds.
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

// shellLockOf asks the master who holds SeaweedFS's shell lock.
func shellLockOf(wc *weedCluster) (holder string, held bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := wc.mc.GetAdminLockStatus(ctx, &master_pb.GetAdminLockStatusRequest{LockName: seaweed.ShellLockName})
	if err != nil {
		return err.Error(), false
	}
	return resp.ClientName, resp.IsLocked
}

// TestWeedShellLockWaitsForOurAttempt: the leader holds SeaweedFS's shell
// lock while its attempts are assigned or running, as `weed admin` does
// around its jobs. The worker is stopped (SIGSTOP) before the volume gets
// its garbage, so the vacuum stays assigned for as long as the test wants:
// meanwhile the master names our leader as the shell lock's holder and a
// real `weed shell` that typed `lock` waits. Once the worker goes on and
// the vacuum completes, the leader releases the lock and leaves it free
// for the yield window; the shell gets it, and whenever the master names
// the shell as holder, the vacuum has completed. While the shell holds it
// a manual vacuum stays pending; after `unlock` it runs and completes.
func TestWeedShellLockWaitsForOurAttempt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real SeaweedFS cluster, weed shell, an admin and a worker")
	}
	wc := startWeedCluster(t, 2)
	bin := weedBinary(t)
	a, vid := wc.assignWithin(t, 60*time.Second, "shellwait", 20, 64<<10+4<<10)
	files := wc.writeAssigned(t, a, vid, 20, 64<<10, 7)

	admins := newCluster(t, 1)
	for _, nd := range admins.nodes {
		// A long worker lease: the stopped worker keeps its attempt.
		nd.startArgs(t, append(nd.args(), "--master", wc.masterHTTP, "--detect-interval", "1s", "--worker-lease", "120s",
			"--hold-shell-lock", "--vacuum-garbage-threshold", "0.3", "--balance-imbalance-threshold", "1000")...)
	}
	admins.waitStable(t, admins.nodes...)
	addrs := strings.Join(admins.addrs(), ",")
	ws := startWorkers(t, 1, admins.addrs())
	testutil.Poll(t, 60*time.Second, pollEvery, "the worker to connect", func() (bool, string) {
		w, _, err := ctlJSONErr[[]sysWorker](t, "", addrs, "workers")
		return err == nil && len(w) == 1 && w[0].Connected, fmt.Sprintf("%+v %v", w, err)
	})
	if holder, held := shellLockOf(wc); held {
		t.Fatalf("the shell lock is held by %q with nothing to do; want it free", holder)
	}
	if err := ws[0].signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = ws[0].signal(syscall.SIGCONT)
		}
	})
	wc.deleteFiles(t, a.URL, files[:10])
	st := ctlJSON[maintenanceStatus](t, "", addrs, "status")
	ours := "groundskeeper " + st.LeaderID
	var task sysTask
	testutil.Poll(t, 90*time.Second, pollEvery, "the vacuum to be assigned, under our shell lock", func() (bool, string) {
		tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", addrs, "tasks")
		if err != nil {
			return false, err.Error()
		}
		for _, tk := range tasks {
			if tk.VolumeID == vid && tk.Type == "vacuum" && tk.State == "assigned" {
				task = tk
				holder, held := shellLockOf(wc)
				return held && holder == ours, fmt.Sprintf("%s; shell lock held %v by %q", tk, held, holder)
			}
		}
		return false, joinTasks(tasks)
	})
	if m := ctlJSON[maintenanceStatus](t, "", addrs, "status").Maintenance; m == nil || !m.ShellLockOurs || m.ShellLockHolder != "" || m.Paused != "" {
		t.Errorf("ctl status while our attempt holds the shell lock: %+v; want ours, not held elsewhere, not paused", m)
	}
	if text := ctl(t, addrs, "status"); !strings.Contains(text.Stdout, "shell lock held by this leader") {
		t.Errorf("ctl status does not say the leader holds the shell lock:\n%s", text.Stdout)
	}

	// The operator's shell types `lock` while our vacuum is assigned.
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
	// Five seconds of the shell asking (about once a second): it must not
	// get the lock while our attempt is assigned.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if holder, held := shellLockOf(wc); !held || holder != ours {
			t.Fatalf("shell lock held %v by %q while our vacuum is assigned; want %q to keep it\nshell: %s", held, holder, ours, out.String())
		}
	}

	// The worker goes on: the vacuum runs and completes; the shell gets
	// the lock only after that.
	if err := ws[0].signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	resumed := time.Now()
	var holder string
	testutil.Poll(t, 90*time.Second, 100*time.Millisecond, "the shell to get the lock once our vacuum has ended", func() (bool, string) {
		h, held := shellLockOf(wc)
		if !held || h == ours {
			return false, fmt.Sprintf("held %v by %q", held, h)
		}
		// Asked after the lock: if the vacuum is not completed now, it was
		// not when the shell held the lock.
		tasks := ctlJSON[[]sysTask](t, "tasks", addrs, "tasks")
		for _, tk := range tasks {
			if tk.ID == task.ID && tk.State != "completed" {
				t.Fatalf("the shell (%q) holds the lock while our vacuum is %s", h, tk)
			}
		}
		holder = h
		return true, h
	})
	t.Logf("the shell got the lock %s after the worker went on", time.Since(resumed).Round(10*time.Millisecond))
	if h, held := shellLockOf(wc); !held || h != holder {
		t.Fatalf("shell lock held %v by %q; want the shell %q to keep it", held, h, holder)
	}

	// While the shell holds the lock, a manual vacuum waits.
	sub := ctlJSON[submitJSON](t, "submit", addrs, "task", "submit", "--type", "vacuum", "--volume", fmt.Sprint(vid))
	st = fivePolls(t, addrs, "weed shell", "ours")
	if m := st.Maintenance; m.ShellLockHolder != holder || m.ShellLockOurs || !m.AssignmentPaused {
		t.Errorf("ctl status while weed shell holds the lock: %+v; want it held by %q, not ours, assignment paused", *m, holder)
	}
	for _, tk := range ctlJSON[[]sysTask](t, "tasks", addrs, "tasks") {
		if tk.ID == sub.ID && tk.State != "pending" {
			t.Fatalf("manual vacuum while weed shell holds the lock: %s; want pending", tk)
		}
	}

	// The operator unlocks: our maintenance resumes.
	unlocked := time.Now()
	if _, err := io.WriteString(stdin, "unlock\n"); err != nil {
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
	testutil.Poll(t, 90*time.Second, pollEvery, "the manual vacuum to complete once the shell unlocks", func() (bool, string) {
		tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", addrs, "tasks")
		if err != nil {
			return false, err.Error()
		}
		for _, tk := range tasks {
			if tk.ID == sub.ID {
				return tk.State == "completed", tk.String()
			}
		}
		return false, joinTasks(tasks)
	})
	t.Logf("the manual vacuum completed %s after the shell unlocked", time.Since(unlocked).Round(10*time.Millisecond))
	wc.checkFiles(t, files[10:], a.URL)
	testutil.Poll(t, 30*time.Second, pollEvery, "the leader to release the shell lock with nothing in flight", func() (bool, string) {
		h, held := shellLockOf(wc)
		return !held, fmt.Sprintf("held %v by %q", held, h)
	})
}
