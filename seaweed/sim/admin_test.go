package sim

import (
	"testing"
	"time"

	mpb "github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
	"google.golang.org/grpc/codes"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

func TestMarkReadonlyWritable(t *testing.T) {
	// A long heartbeat delay: read-only marks must reach the master anyway.
	c := newCluster(t, Config{Servers: 2, HeartbeatDelay: time.Hour})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: mib, Servers: []int{0}}))
	c.Flush()
	s := c.Server(0)
	vc, mc := vsClient(t, s), masterClient(t, c)
	ctx := ctxT(t)

	must[*vpb.VolumeMarkReadonlyResponse](t)(vc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 1}))
	if !topology(t, mc).Volumes[1].ReadOnly {
		t.Fatal("the master must see a read-only mark at once")
	}
	st := must[*vpb.VolumeStatusResponse](t)(vc.VolumeStatus(ctx, &vpb.VolumeStatusRequest{VolumeId: 1}))
	if !st.IsReadOnly {
		t.Fatal("VolumeStatus must report read-only")
	}
	if err := c.Write(1, mib, 1); err == nil {
		t.Fatal("a write to a read-only volume must fail")
	}
	// Idempotent.
	must[*vpb.VolumeMarkReadonlyResponse](t)(vc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 1}))
	must[*vpb.VolumeMarkWritableResponse](t)(vc.VolumeMarkWritable(ctx, &vpb.VolumeMarkWritableRequest{VolumeId: 1}))
	must[*vpb.VolumeMarkWritableResponse](t)(vc.VolumeMarkWritable(ctx, &vpb.VolumeMarkWritableRequest{VolumeId: 1}))
	if topology(t, mc).Volumes[1].ReadOnly {
		t.Fatal("the master must see the volume writable at once")
	}
	ok(t, c.Write(1, mib, 1))

	_, err := vc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 9})
	wantErr(t, err, codes.Unknown, "volume 9 not found")
	_, err = vc.VolumeMarkWritable(ctx, &vpb.VolumeMarkWritableRequest{VolumeId: 9})
	wantErr(t, err, codes.Unknown, "volume 9 not found")
	_, err = vc.VolumeStatus(ctx, &vpb.VolumeStatusRequest{VolumeId: 9})
	wantErr(t, err, codes.Unknown, "not found volume id 9")
	_, err = vc.ReadVolumeFileStatus(ctx, &vpb.ReadVolumeFileStatusRequest{VolumeId: 9})
	wantErr(t, err, codes.Unknown, "not found volume id 9")

	// Without a master, marking read-only fails and changes nothing;
	// marking writable flips locally and then reports the failure.
	markWithoutMaster := func(mark func() error, why string) {
		t.Helper()
		c.StopMaster()
		wantErr(t, mark(), codes.Unknown, "grpc VolumeMarkReadonly with master")
		if v, _ := s.Volume(1); v.ReadOnly {
			t.Fatal(why)
		}
		ok(t, c.StartMaster())
	}
	markWithoutMaster(func() error {
		_, err := vc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 1})
		return err
	}, "a failed mark must leave the volume writable")
	must[*vpb.VolumeMarkReadonlyResponse](t)(vc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 1}))
	markWithoutMaster(func() error {
		_, err := vc.VolumeMarkWritable(ctx, &vpb.VolumeMarkWritableRequest{VolumeId: 1})
		return err
	}, "mark writable flips locally before it calls the master")

	// persist=false is lost on restart, persist=true kept.
	must[*vpb.VolumeMarkReadonlyResponse](t)(vc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 1}))
	ok(t, s.Restart())
	if v, _ := s.Volume(1); v.ReadOnly {
		t.Fatal("a non-persisted mark must not survive a restart")
	}
	testutil.EventuallyTrue(t, 5*time.Second, "server back", func() bool {
		_, err := vc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 1, Persist: true})
		return err == nil
	})
	ok(t, s.Restart())
	if v, _ := s.Volume(1); !v.ReadOnly || !v.ReadOnlyPersist {
		t.Fatalf("a persisted mark must survive a restart: %+v", v)
	}
}

func TestVolumeDelete(t *testing.T) {
	c := newCluster(t, Config{Servers: 1})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: mib, FileCount: 3}))
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 2}))
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 3, Size: mib, FileCount: 3, DeleteCount: 3, DeletedBytes: mib / 2}))
	vc, mc := vsClient(t, c.Server(0)), masterClient(t, c)
	ctx := ctxT(t)
	_, err := vc.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 1, OnlyEmpty: true})
	wantErr(t, err, codes.FailedPrecondition, "volume not empty")
	_, err = vc.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 1, OnlyGarbage: true})
	wantErr(t, err, codes.FailedPrecondition, "volume not empty")
	must[*vpb.VolumeDeleteResponse](t)(vc.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 2, OnlyEmpty: true}))
	must[*vpb.VolumeDeleteResponse](t)(vc.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 3, OnlyGarbage: true}))
	must[*vpb.VolumeDeleteResponse](t)(vc.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 1}))
	_, err = vc.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 1})
	wantErr(t, err, codes.NotFound, "not found")
	if n := len(topology(t, mc).Volumes); n != 0 {
		t.Fatalf("master still lists %d volumes", n)
	}
}

func TestAdminLock(t *testing.T) {
	c := newCluster(t, Config{Servers: 1, AdminLockDuration: 300 * time.Millisecond})
	mc := masterClient(t, c)
	ctx := ctxT(t)
	lease := func(prev *mpb.LeaseAdminTokenResponse, client string) (*mpb.LeaseAdminTokenResponse, error) {
		req := &mpb.LeaseAdminTokenRequest{LockName: "admin-server", ClientName: client}
		if prev != nil {
			req.PreviousToken, req.PreviousLockTime = prev.Token, prev.LockTsNs
		}
		return mc.LeaseAdminToken(ctx, req)
	}
	a1 := must[*mpb.LeaseAdminTokenResponse](t)(lease(nil, "a"))
	_, err := lease(nil, "b")
	wantErr(t, err, codes.Unknown, "already locked by a")
	if client, held := c.AdminLock("admin-server"); !held || client != "a" {
		t.Fatalf("AdminLock %q %v", client, held)
	}
	// Renewal: new token and timestamp every time; the old pair is dead.
	a2 := must[*mpb.LeaseAdminTokenResponse](t)(lease(a1, "a"))
	if a2.Token == a1.Token || a2.LockTsNs == a1.LockTsNs {
		t.Fatalf("renewal must return a new token and time: %v then %v", a1, a2)
	}
	_, err = lease(a1, "a")
	wantErr(t, err, codes.Unknown, "already locked by a")
	// Other lock names are independent.
	must[*mpb.LeaseAdminTokenResponse](t)(mc.LeaseAdminToken(ctx, &mpb.LeaseAdminTokenRequest{LockName: "shell", ClientName: "b"}))
	stat := must[*mpb.GetAdminLockStatusResponse](t)(mc.GetAdminLockStatus(ctx, &mpb.GetAdminLockStatusRequest{LockName: "admin-server"}))
	if !stat.IsLocked || stat.ClientName != "a" {
		t.Fatalf("status %v", stat)
	}
	// Release with a stale token is a silent no-op; with the current one it frees.
	must[*mpb.ReleaseAdminTokenResponse](t)(mc.ReleaseAdminToken(ctx, &mpb.ReleaseAdminTokenRequest{LockName: "admin-server", PreviousToken: a1.Token, PreviousLockTime: a1.LockTsNs}))
	if _, held := c.AdminLock("admin-server"); !held {
		t.Fatal("a stale release must not free the lock")
	}
	for range 2 {
		must[*mpb.ReleaseAdminTokenResponse](t)(mc.ReleaseAdminToken(ctx, &mpb.ReleaseAdminTokenRequest{LockName: "admin-server", PreviousToken: a2.Token, PreviousLockTime: a2.LockTsNs}))
	}
	b1 := must[*mpb.LeaseAdminTokenResponse](t)(lease(nil, "b"))
	// The lease expires; then anyone gets it fresh, whatever token they carry.
	time.Sleep(350 * time.Millisecond)
	if _, held := c.AdminLock("admin-server"); held {
		t.Fatal("the lease must expire")
	}
	must[*mpb.LeaseAdminTokenResponse](t)(lease(a2, "a"))
	_, err = lease(b1, "b")
	wantErr(t, err, codes.Unknown, "already locked by a")
	// A master restart drops every lock.
	ok(t, c.RestartMaster())
	testutil.EventuallyTrue(t, 5*time.Second, "master back", func() bool {
		_, err := lease(nil, "c")
		return err == nil
	})
}

func TestVacuumSwitch(t *testing.T) {
	c := newCluster(t, Config{Servers: 1})
	mc := masterClient(t, c)
	ctx := ctxT(t)
	must[*mpb.DisableVacuumResponse](t)(mc.DisableVacuum(ctx, &mpb.DisableVacuumRequest{ByPlugin: true}))
	if op, pl := c.VacuumDisabled(); op || !pl {
		t.Fatalf("operator %v plugin %v", op, pl)
	}
	must[*mpb.DisableVacuumResponse](t)(mc.DisableVacuum(ctx, &mpb.DisableVacuumRequest{}))
	must[*mpb.EnableVacuumResponse](t)(mc.EnableVacuum(ctx, &mpb.EnableVacuumRequest{ByPlugin: true}))
	if op, pl := c.VacuumDisabled(); !op || pl {
		t.Fatalf("enable clears only its own flag: operator %v plugin %v", op, pl)
	}
	ok(t, c.RestartMaster())
	if op, pl := c.VacuumDisabled(); op || pl {
		t.Fatal("a master restart turns vacuum back on")
	}
	var cfg *mpb.GetMasterConfigurationResponse
	testutil.EventuallyTrue(t, 5*time.Second, "master back", func() bool {
		var err error
		cfg, err = mc.GetMasterConfiguration(ctx, &mpb.GetMasterConfigurationRequest{})
		return err == nil
	})
	if cfg.Leader != c.MasterServerAddress().String() || cfg.VolumeSizeLimitMB != 30000 {
		t.Fatalf("master configuration %v", cfg)
	}
}
