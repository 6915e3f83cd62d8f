package integration

import (
	"context"
	"fmt"
	"math/bits"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// productionSpecs is the production-shaped cluster's volume servers, each
// its own machine (loopback IP): two data centres of two racks each, hdd
// servers in every rack, an ssd server in each of dc2's racks. The server
// added once maintenance runs (the balance target) is productionAdded.
var (
	productionSpecs = []volumeSpec{
		{IP: "127.0.0.11", DC: "dc1", Rack: "r1", Max: 12},
		{IP: "127.0.0.12", DC: "dc1", Rack: "r1", Max: 12},
		{IP: "127.0.0.13", DC: "dc1", Rack: "r2", Max: 12},
		{IP: "127.0.0.14", DC: "dc2", Rack: "r1", Max: 12},
		{IP: "127.0.0.15", DC: "dc2", Rack: "r1", Disk: "ssd", Max: 8},
		{IP: "127.0.0.16", DC: "dc2", Rack: "r2", Max: 12},
		{IP: "127.0.0.17", DC: "dc2", Rack: "r2", Disk: "ssd", Max: 8},
	}
	productionAdded = volumeSpec{IP: "127.0.0.18", DC: "dc1", Rack: "r2", Max: 12}
)

// productionRoles: a full quiet volume to erasure code (no replication,
// hdd) and garbage-heavy volumes to vacuum in a 010 collection (on hdd
// and on ssd) and a 001 collection.
func productionRoles() []*volumeRole {
	half := func(i int) bool { return i%2 == 1 }
	return []*volumeRole{
		{name: "ec", ec: true, files: 60, minSize: 112 << 10, deleted: func(i int) bool { return i%20 == 7 }},
		{name: "010-hdd", target: assignTarget{Collection: "r010", Replication: "010"}, files: 30, minSize: 64 << 10, deleted: half},
		{name: "010-ssd", target: assignTarget{Collection: "r010", Replication: "010", Disk: "ssd"}, files: 30, minSize: 64 << 10, deleted: half},
		{name: "001", target: assignTarget{Collection: "r001", Replication: "001"}, files: 30, minSize: 64 << 10, deleted: half},
	}
}

// TestProductionShapedSeaweedFS is issue 12's production shape on real
// SeaweedFS: three masters (-peers), volume servers on machines of their
// own in two data centres and four racks, hdd and ssd disks, a 010 and a
// 001 collection, and gRPC mutual TLS for every component (security.toml
// in every weed process's directory, the admins' and workers'
// --seaweedfs-security). Three admins given all three masters and two
// workers vacuum, erasure code and balance (onto a server added once they
// run) with no manual submission, while the master leader is killed
// twice (the first killed master restarted before the second kill): after
// each election half of a clean 001 or 010 volume's files are deleted,
// and its vacuum, work only the new master leader shows, must complete
// within a minute; no task fails. Afterwards every volume satisfies its replica placement and
// none is misplaced, every EC volume's shards are spread (per server, per
// rack and per data centre), no volume and no shard left its disk type,
// and every file reads back (deleted ones 404).
func TestProductionShapedSeaweedFS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three SeaweedFS masters, eight volume servers, three admins and two workers")
	}
	testStart := time.Now()
	pkiDir, weedDir := t.TempDir(), t.TempDir()
	secFile := writeSecurity(t, weedDir, seaweedPKI(t, pkiDir,
		[]string{"grpc.master", "grpc.volume", "grpc.admin", "grpc.worker"},
		[]string{"master", "volume", "gk-admin", "gk-worker"}))
	sec, err := seaweed.LoadSecurity(seaweed.SecurityOptions{File: secFile, Component: seaweed.ComponentAdmin})
	if err != nil || !sec.TLS() {
		t.Fatalf("the test's own security: %v (TLS %v)", err, sec.TLS())
	}
	wc := startWeedMastersWith(t, 3, productionSpecs, weedOptions{cwd: weedDir, dial: sec.DialOptions()})
	t.Logf("3 masters (%s) and %d volume servers up with mutual TLS in %s", wc.masterPeers, len(wc.servers), time.Since(testStart).Round(time.Millisecond))

	th, roles := systemThresholds, productionRoles()
	_, allFiles, used, reassigns := seedRoles(t, wc.weedCluster, roles, th)
	// Two clean volumes, one per kill, made garbage-heavy only once a new
	// master leader is elected: vacuum work that only it shows.
	late := []*volumeRole{
		{name: "late-001", target: assignTarget{Collection: "r001", Replication: "001"}, files: 20, minSize: 32 << 10},
		{name: "late-010", target: assignTarget{Collection: "r010", Replication: "010"}, files: 20, minSize: 32 << 10},
	}
	for i, r := range late {
		for r.vid == 0 || used[r.vid] {
			var a assignResult
			a, r.vid = wc.assignTo(t, 60*time.Second, r.target, r.files, r.minSize+r.minSize/8)
			if !used[r.vid] {
				used[r.vid] = true
				r.stored = wc.writeAssigned(t, a, r.vid, r.files, r.minSize, uint64(100+i))
				break
			}
		}
	}
	wc.waitTopology(t, "the master to list the late volumes' files", func(topo *seaweed.Topology) (bool, string) {
		for _, r := range late {
			if v := topo.Volumes[r.vid]; v == nil || v.FileCount < uint64(r.files) {
				return false, fmt.Sprintf("%s volume %d: %+v", r.name, r.vid, v)
			}
		}
		return true, ""
	})
	topo, err := wc.topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		v := topo.Volumes[r.vid]
		t.Logf("before: %-8s volume %d (%s, placement %03d, disk %q) on %v: garbage %.0f%%",
			r.name, r.vid, v.Collection, v.ReplicaPlacement, v.DiskType, holders(topo, r.vid), v.GarbageRatio()*100)
		if want := placement.DiskTypeKey(r.target.Disk); placement.DiskTypeKey(v.DiskType) != want {
			t.Fatalf("set-up: %s volume %d is on disk type %q, want %q", r.name, r.vid, v.DiskType, want)
		}
		if r.target.Replication != "" && fmt.Sprintf("%03d", v.ReplicaPlacement) != r.target.Replication {
			t.Fatalf("set-up: %s volume %d has placement %03d, want %s", r.name, r.vid, v.ReplicaPlacement, r.target.Replication)
		}
	}
	diskBefore := volumeDisks(topo)
	if msg := placementViolations(topo); msg != "" {
		t.Fatalf("set-up: the master itself placed volumes badly: %s", msg)
	}
	t.Logf("wrote %d files (%d re-assigns); %d volumes on %d servers: %s", len(allFiles), reassigns, len(topo.Volumes), len(topo.Servers), slotUsage(topo))

	maintBegan := time.Now()
	m := startMaintenanceWith(t, wc.weedCluster, th, productionAdded, "--seaweedfs-security", secFile)

	// Kill the master leader as soon as the maintenance runs, and again
	// (after restarting the first killed one) once the work made after the
	// first kill is done. After each election, half of a late volume's
	// files are deleted: the time from the election to that volume's
	// vacuum completing is how long maintenance takes to carry on.
	var kills []int
	var elected time.Time
	killLeader := func() {
		t.Helper()
		if len(kills) > 0 {
			wc.restart(t, kills[len(kills)-1])
		}
		old, _ := wc.leader()
		if old < 0 {
			return // none leads right now: try again at the next poll
		}
		killed := time.Now()
		wc.procs[old].stop()
		next := wc.lead(t, old)
		elected = time.Now()
		kills = append(kills, old)
		t.Logf("%5.1fs master leader %s killed (kill %d); %s leads %s later", time.Since(maintBegan).Seconds(),
			wc.http[old], len(kills), wc.http[next], elected.Sub(killed).Round(10*time.Millisecond))
		r := late[len(kills)-1]
		// A new master leader answers lookups once it is warmed up, and
		// knows every copy once every holder's heartbeat reached it: the
		// volume server deleting asks it for the copies to replicate to,
		// and refuses while it names fewer than the placement's.
		copies := 1
		for _, d := range r.target.Replication {
			copies += int(d - '0')
		}
		var locs []string
		testutil.Poll(t, 30*time.Second, weedPollEvery, fmt.Sprintf("the new master leader to name %d copies of %s volume %d", copies, r.name, r.vid), func() (bool, string) {
			var err error
			if locs, err = wc.lookup(r.vid); err != nil {
				return false, err.Error()
			}
			return len(locs) >= copies, fmt.Sprint(locs)
		})
		var del []*storedFile
		for i, f := range r.stored {
			if i%2 == 0 {
				del = append(del, f)
			}
		}
		wc.deleteFiles(t, locs[0], del)
	}
	var resumed []time.Duration
	lastSummary := ""
	var final []sysTask
	var finalTopo *seaweed.Topology
	testutil.Poll(t, maintenanceTimeout, systemPollEvery, "vacuum, erasure coding and balance to complete and the system to go quiet", func() (bool, string) {
		tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", m.adminAddrs, "tasks")
		if err != nil {
			return false, err.Error()
		}
		if failed := tasksIn(tasks, "failed"); len(failed) > 0 {
			t.Fatalf("tasks failed:\n%s", joinTasks(failed))
		}
		if s := stateSummary(tasks); s != lastSummary {
			t.Logf("%5.1fs tasks: %s", time.Since(maintBegan).Seconds(), s)
			lastSummary = s
		}
		if len(kills) > len(resumed) && hasTask(tasks, "vacuum", late[len(kills)-1].vid, "completed") {
			resumed = append(resumed, time.Since(elected))
			t.Logf("%5.1fs the vacuum of garbage made after kill %d completed %s after the new master leader's election",
				time.Since(maintBegan).Seconds(), len(kills), resumed[len(resumed)-1].Round(10*time.Millisecond))
		}
		if len(kills) < 2 && len(kills) == len(resumed) {
			killLeader()
			return false, "master leader killed"
		}
		topo, err := wc.topology(context.Background())
		if err != nil {
			wc.refind()
			return false, "VolumeList: " + err.Error()
		}
		if len(kills) < 2 || len(resumed) < 2 {
			return false, fmt.Sprintf("%d master leaders killed, the vacuums made after %d of them completed", len(kills), len(resumed))
		}
		if msg := maintenanceDone(tasks, topo, roles, m.added, m.isAdded); msg != "" {
			return false, msg
		}
		// Quiet: the master's topology calls for no more work.
		if msg := pendingWork(topo, tasks, th); msg != "" {
			return false, msg
		}
		final, finalTopo = tasks, topo
		return true, ""
	})
	quietAfter := time.Since(maintBegan)
	for i, d := range resumed {
		// Detection every 2 s, the master's view of the deletions within
		// a heartbeat or two, then the vacuum itself.
		if d > time.Minute {
			t.Errorf("the vacuum of garbage made after kill %d completed only %s after the new master leader's election", i+1, d)
		}
	}
	for _, r := range late {
		if n := len(tasksFor(final, "vacuum", r.vid, "completed")); n != 1 {
			t.Errorf("%s volume %d was vacuumed %d times, want once", r.name, r.vid, n)
		}
	}

	// Placement, spread and disk types, as the master reports them.
	if msg := placementViolations(finalTopo); msg != "" {
		t.Errorf("after balance: %s", msg)
	}
	for vid, was := range diskBefore {
		if now, ok := volumeDisks(finalTopo)[vid]; ok && now != was {
			t.Errorf("volume %d moved from disk type %s to %s", vid, was, now)
		}
	}
	raw, err := wc.rawView(context.Background())
	if err != nil {
		t.Fatalf("VolumeList: %v", err)
	}
	for _, r := range roles {
		if !r.ec {
			continue
		}
		if msg := raw.erasureCoded(r.vid, systemCollection, placement.MinECServers); msg != "" {
			t.Errorf("master_pb: %s", msg)
		}
		if msg := ecSpread(finalTopo, raw.ecBits[r.vid]); msg != "" {
			t.Errorf("EC volume %d: %s", r.vid, msg)
		}
		if want := placement.DiskTypeKey(r.target.Disk); len(raw.ecDisks[r.vid]) != 1 || !raw.ecDisks[r.vid][want] {
			t.Errorf("EC volume %d's shards are on disk types %v, want only %q", r.vid, raw.ecDisks[r.vid], want)
		}
		t.Logf("after: EC volume %d's shards: %s", r.vid, ecLayout(finalTopo, raw.ecBits[r.vid]))
	}
	moves := tasksFor(final, "balance", 0, "completed")
	for _, tk := range moves {
		where := func(id string) string {
			if srv, ok := finalTopo.FindServer(id); ok {
				return srv.DataCenter + "/" + srv.Rack
			}
			return "?"
		}
		rp := "?"
		if v := finalTopo.Volumes[tk.VolumeID]; v != nil {
			rp = fmt.Sprintf("%s, placement %03d, disk %q", v.Collection, v.ReplicaPlacement, v.DiskType)
		}
		t.Logf("after: volume %d (%s) moved %s (%s) -> %s (%s)", tk.VolumeID, rp, tk.Source, where(tk.Source), tk.Target, where(tk.Target))
	}

	var everyServer []string
	for _, s := range wc.servers {
		everyServer = append(everyServer, s.HTTP)
	}
	ecVids := map[uint32]bool{}
	for _, r := range roles {
		ecVids[r.vid] = r.ec
	}
	reads := readBack(t, wc.weedCluster, append(roles, late...), everyServer, func(r *volumeRole) bool { return ecVids[r.vid] })
	t.Logf("SUMMARY: %d tasks (%s), %d balance moves, all placements kept; master leader killed %d times, the vacuum of garbage made after each kill completed %v after the election; "+
		"maintenance done and quiet after %s; %d reads back intact; whole test %s",
		len(final), typeSummary(final), len(moves), len(kills), resumed, quietAfter.Round(100*time.Millisecond), reads, time.Since(testStart).Round(100*time.Millisecond))
}

// volumeDisks is each regular volume's disk type (placement.DiskTypeKey),
// "mixed: ..." if its replicas disagree.
func volumeDisks(topo *seaweed.Topology) map[uint32]string {
	out := map[uint32]string{}
	for vid, v := range topo.Volumes {
		set := map[string]bool{}
		for _, r := range v.Replicas {
			set[placement.DiskTypeKey(r.DiskType)] = true
		}
		var ks []string
		for k := range set {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		if len(ks) == 1 {
			out[vid] = ks[0]
		} else {
			out[vid] = "mixed: " + strings.Join(ks, ",")
		}
	}
	return out
}

// placementViolations names every volume whose replicas do not satisfy
// its replica placement, or sit where SeaweedFS would not put them ("" if
// none).
func placementViolations(topo *seaweed.Topology) string {
	var bad []string
	for vid, v := range topo.Volumes {
		locs := placement.VolumeLocations(v)
		if !placement.SatisfiesPlacement(v.ReplicaPlacement, locs) || placement.Misplaced(v.ReplicaPlacement, locs) {
			bad = append(bad, fmt.Sprintf("volume %d (placement %03d) on %+v", vid, v.ReplicaPlacement, locs))
		}
	}
	sort.Strings(bad)
	return strings.Join(bad, "; ")
}

// ecSpread checks one EC volume's shard layout (shard bits by server id):
// placement.CheckSpread per server, and per rack and per data centre at
// most ceil(14/n) of n units, unless the units' hdd room forced more
// (checked as: a unit above its share is allowed only if every other unit
// is full at MaxShardsPerServer per server).
func ecSpread(topo *seaweed.Topology, bitsBy map[string]uint32) string {
	perServer := map[string]int{}
	for s, b := range bitsBy {
		perServer[s] = bits.OnesCount32(b)
	}
	if err := placement.CheckSpread(perServer); err != nil {
		return err.Error()
	}
	// The units that could hold shards: those with a server of the
	// shards' disk type (any server holding a shard has it).
	type unit struct{ held, servers int }
	units := func(key func(*seaweed.Server) string) map[string]*unit {
		us := map[string]*unit{}
		diskTypes := map[string]bool{}
		for s := range perServer {
			if srv, ok := topo.Server(s); ok {
				for dt := range srv.Disks {
					diskTypes[placement.DiskTypeKey(dt)] = true
				}
			}
		}
		for _, srv := range topo.Servers {
			has := false
			for dt, d := range srv.Disks {
				has = has || (diskTypes[placement.DiskTypeKey(dt)] && d.MaxVolumes > 0)
			}
			if !has {
				continue
			}
			k := key(srv)
			if us[k] == nil {
				us[k] = &unit{}
			}
			us[k].servers++
			us[k].held += perServer[srv.ID]
		}
		return us
	}
	for _, level := range []struct {
		name string
		key  func(*seaweed.Server) string
	}{
		{"data centre", func(s *seaweed.Server) string { return s.DataCenter }},
		{"rack", func(s *seaweed.Server) string { return s.DataCenter + "/" + s.Rack }},
	} {
		us := units(level.key)
		share := (placement.TotalShards + len(us) - 1) / len(us)
		for k, u := range us {
			if u.held <= share {
				continue
			}
			for k2, u2 := range us {
				if k2 != k && u2.held < u2.servers*placement.MaxShardsPerServer {
					return fmt.Sprintf("%s %s holds %d shards, more than its share %d of %d, while %s has room", level.name, k, u.held, share, len(us), k2)
				}
			}
		}
	}
	return ""
}

// ecLayout prints shards per server with the server's data centre and rack.
func ecLayout(topo *seaweed.Topology, bitsBy map[string]uint32) string {
	var s []string
	for id, b := range bitsBy {
		where := "?"
		if srv, ok := topo.Server(id); ok {
			where = srv.DataCenter + "/" + srv.Rack
		}
		s = append(s, fmt.Sprintf("%s (%s) %d", id, where, bits.OnesCount32(b)))
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// TestProductionShapedRefusedCertificate is the rest of issue 12's
// production must-show, apart from TestProductionShapedSeaweedFS so that
// it does not lengthen it: on the same shape (three masters, servers in
// two data centres, gRPC mutual TLS from the same security.toml), the
// admin given all three masters and work to do (a volume with garbage),
// but a client certificate of another CA, or none (no security.toml:
// plaintext), starts, says in one sentence in ctl status why it reaches
// no master leader, keeps detection paused, and makes no task; SeaweedFS
// is left as it was (the volume keeps its copies and its garbage). A
// security.toml that sets grpc.ca but gives the admin no certificate is
// refused at start in one sentence.
func TestProductionShapedRefusedCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three SeaweedFS masters, three volume servers and admins")
	}
	pkiDir, weedDir := t.TempDir(), t.TempDir()
	secFile := writeSecurity(t, weedDir, seaweedPKI(t, pkiDir,
		[]string{"grpc.master", "grpc.volume", "grpc.admin", "grpc.worker"},
		[]string{"master", "volume", "gk-admin", "gk-worker"}))
	sec, err := seaweed.LoadSecurity(seaweed.SecurityOptions{File: secFile, Component: seaweed.ComponentAdmin})
	if err != nil || !sec.TLS() {
		t.Fatalf("the test's own security: %v (TLS %v)", err, sec.TLS())
	}
	wc := startWeedMastersWith(t, 3, []volumeSpec{productionSpecs[0], productionSpecs[2], productionSpecs[3]}, weedOptions{cwd: weedDir, dial: sec.DialOptions()})

	files := wc.writeFiles(t, "refused", 40, 24<<10)
	vid := files[0].Vid
	wc.deleteFiles(t, files[0].URL, files[:26])
	before := wc.waitTopology(t, "the master leader to see the writes and deletions", func(topo *seaweed.Topology) (bool, string) {
		v := topo.Volumes[vid]
		return v != nil && v.FileCount >= 40 && v.DeleteCount >= 26 && v.GarbageRatio() >= 0.3, fmt.Sprintf("volume %d: %+v", vid, v)
	})
	th := systemThresholds

	otherDir := t.TempDir()
	otherCA := writeSecurity(t, otherDir, seaweedPKI(t, otherDir, []string{"grpc.admin"}, []string{"gk-admin"}))
	bad := newCluster(t, 1)
	nd := bad.nodes[0]
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"a client certificate of another CA", []string{"--seaweedfs-security", otherCA}, "does not verify against grpc.ca"},
		{"no client certificate (no security.toml: plaintext)", nil, "dials in plaintext"},
	} {
		nd.startArgs(t, append(detectingArgs(nd, wc.weedCluster, th), tc.extra...)...)
		bad.waitStable(t, nd)
		var st mastersStatus
		testutil.Poll(t, 60*time.Second, pollEvery, "status to show no master leader reached", func() (bool, string) {
			var err error
			if st, _, err = ctlJSONErr[mastersStatus](t, "status", nd.GRPCAddr, "status"); err != nil {
				return false, err.Error()
			}
			m := st.Maintenance
			return m != nil && m.MasterState == "unreachable" && strings.Contains(m.MasterError, tc.want) && len(m.Masters) == 3, fmt.Sprintf("%+v", m)
		})
		msg := st.Maintenance.MasterError
		t.Logf("admin with %s: status says %q", tc.name, msg)
		if strings.Contains(msg, "\n") || strings.Count(msg, tc.want) != 1 || !strings.Contains(msg, "all 3 masters") {
			t.Errorf("admin with %s: status does not say why once, for all 3 masters: %q", tc.name, msg)
		}
		if out := ctl(t, nd.GRPCAddr, "status"); !strings.Contains(out.Stdout, "detection paused") {
			t.Errorf("admin with %s: status does not say detection is paused:\n%s", tc.name, out)
		}
		if tasks := ctlJSON[[]sysTask](t, "tasks", nd.GRPCAddr, "tasks"); len(tasks) != 0 {
			t.Fatalf("admin with %s made tasks: %s", tc.name, joinTasks(tasks))
		}
		_ = nd.signal(syscall.SIGKILL)
		nd.waitExit(t)
	}

	// grpc.ca without [grpc.admin]: refused at start, in one sentence.
	halfDir := t.TempDir()
	half := writeSecurity(t, halfDir, "[grpc]\nca = \""+filepath.Join(pkiDir, certs.CAFile)+"\"\n")
	hc := newCluster(t, 1)
	res := runBin(t, append(detectingArgs(hc.nodes[0], wc.weedCluster, th), "--seaweedfs-security", half)...)
	if res.Code == 0 || !strings.Contains(res.Stderr, "sets grpc.ca but no grpc.admin.cert and grpc.admin.key") {
		t.Fatalf("admin with grpc.ca and no [grpc.admin]: %s", res)
	}

	// Nothing half done: the volume is where it was, with its garbage,
	// and nothing was erasure coded.
	after, err := wc.topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, a := before.Volumes[vid], after.Volumes[vid]
	if a == nil || a.GarbageRatio() < 0.3 || a.FileCount != b.FileCount || fmt.Sprint(holders(after, vid)) != fmt.Sprint(holders(before, vid)) {
		t.Errorf("volume %d changed: before %v on %v, after %+v on %v", vid, b, holders(before, vid), a, holders(after, vid))
	}
	if len(after.Volumes) != len(before.Volumes) {
		t.Errorf("the master lists %d volumes, %d before", len(after.Volumes), len(before.Volumes))
	}
	wc.checkFiles(t, files[26:], files[0].URL)
}
