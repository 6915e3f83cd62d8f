package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// seaweedPKI makes a CA in dir and a certificate for each name (usable to
// serve and to connect; SeaweedFS looks at no role) and returns the
// security.toml text giving component i the certificate of names[i].
func seaweedPKI(t *testing.T, dir string, components, names []string) string {
	t.Helper()
	if _, err := certs.NewCA(dir); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[grpc]\nca = %q\n", filepath.Join(dir, certs.CAFile))
	for i, name := range names {
		if _, err := certs.Issue(dir, certs.RoleAdmin, name, nil, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
		f := certs.IssuedFiles(dir, name)
		fmt.Fprintf(&b, "\n[%s]\ncert = %q\nkey = %q\n", components[i], f.Cert, f.Key)
	}
	return b.String()
}

func writeSecurity(t *testing.T, dir, text string) string {
	t.Helper()
	name := filepath.Join(dir, "security.toml")
	if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestSeaweedFSMutualTLS: a SeaweedFS cluster whose gRPC ports require
// mutual TLS (security.toml in each weed process's working directory,
// [grpc.master] with allowed_commonNames, and [grpc.volume]). A plaintext
// client is refused. An admin whose [grpc.admin] certificate is of
// another CA, or of the cluster's CA but not allowed by the master,
// starts, but says in ctl status that the master is unreachable through
// SeaweedFS's TLS, and nothing is done; one whose security.toml sets grpc.ca without
// [grpc.admin] refuses to start in one sentence. An admin and a worker
// given the cluster's security.toml (--seaweedfs-security, [grpc.admin]
// and [grpc.worker]) vacuum the volume with garbage, then erasure-code it
// and move another volume (both submitted), and the files read back.
func TestSeaweedFSMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts SeaweedFS, two admins and a worker")
	}
	pkiDir, weedDir := t.TempDir(), t.TempDir()
	secText := seaweedPKI(t, pkiDir,
		[]string{"grpc.master", "grpc.volume", "grpc.admin", "grpc.worker"},
		[]string{"master", "volume", "gk-admin", "gk-worker"})
	// The master admits only the cluster's own names.
	secText = strings.Replace(secText, "[grpc.master]\n", "[grpc.master]\nallowed_commonNames = \"master,volume,gk-admin\"\n", 1)
	secFile := writeSecurity(t, weedDir, secText)
	sec, err := seaweed.LoadSecurity(seaweed.SecurityOptions{File: secFile, Component: seaweed.ComponentAdmin})
	if err != nil || !sec.TLS() {
		t.Fatalf("the test's own security: %v (TLS %v)", err, sec.TLS())
	}
	wc := startWeedClusterWith(t, 4, weedOptions{cwd: weedDir, dial: sec.DialOptions()})

	// TLS only: a plaintext client gets nothing from the master.
	ma, err := seaweed.ParseAddress(wc.masterHTTP)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(ma.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = master_pb.NewSeaweedClient(conn).VolumeList(ctx, &master_pb.VolumeListRequest{})
	cancel()
	conn.Close()
	if err == nil {
		t.Fatal("the master answered a plaintext client: its TLS is off")
	}
	t.Logf("a plaintext client is refused: %v", err)

	const collection = "tls"
	files := wc.writeFiles(t, collection, 40, 24<<10)
	moved := wc.writeFiles(t, "tlsmove", 6, 16<<10) // a volume to balance
	vid, holder := files[0].Vid, files[0].URL
	wc.deleteFiles(t, holder, files[:26])
	wc.waitTopology(t, "the master to see the writes and deletions", func(topo *seaweed.Topology) (bool, string) {
		v := topo.Volumes[vid]
		return v != nil && v.FileCount >= 40 && v.DeleteCount >= 26 && v.GarbageRatio() >= 0.3, fmt.Sprintf("volume %d: %+v", vid, v)
	})
	th := systemThresholds
	th.ECMinSizeMB, th.BalanceImbalance = 1<<20, 1000 // vacuum only

	// Refused certificates: the admin runs, but the master is
	// unreachable, ctl status says why in SeaweedFS's terms, and nothing
	// is done. One admin holds another CA's certificate (so it refuses the
	// master's); one holds a certificate of the cluster's CA whose name the
	// master's allowed_commonNames lacks (so the master refuses it).
	wrongDir := t.TempDir()
	wrong := writeSecurity(t, wrongDir, seaweedPKI(t, wrongDir, []string{"grpc.admin"}, []string{"gk-admin"}))
	if _, err := certs.Issue(pkiDir, certs.RoleAdmin, "intruder", nil, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	in := certs.IssuedFiles(pkiDir, "intruder")
	intruder := writeSecurity(t, t.TempDir(), fmt.Sprintf("[grpc]\nca = %q\n[grpc.admin]\ncert = %q\nkey = %q\n", in.CA, in.Cert, in.Key))
	bad := newCluster(t, 1)
	nd := bad.nodes[0]
	for _, tc := range []struct{ name, file, want string }{
		{"a certificate of another CA", wrong, "does not verify against grpc.ca"},
		{"a name the master does not allow", intruder, "our certificate " + in.Cert},
	} {
		nd.startArgs(t, append(detectingArgs(nd, wc, th), "--seaweedfs-security", tc.file)...)
		bad.waitStable(t, nd)
		var st mastersStatus
		testutil.Poll(t, 60*time.Second, pollEvery, "status to show the master unreachable through SeaweedFS's TLS", func() (bool, string) {
			var err error
			if st, _, err = ctlJSONErr[mastersStatus](t, "status", nd.GRPCAddr, "status"); err != nil {
				return false, err.Error()
			}
			m := st.Maintenance
			return m != nil && m.MasterState == "unreachable" && strings.Contains(m.MasterError, tc.want), fmt.Sprintf("%+v", m)
		})
		t.Logf("admin with %s: status says %q", tc.name, st.Maintenance.MasterError)
		if tasks := ctlJSON[[]sysTask](t, "tasks", nd.GRPCAddr, "tasks"); len(tasks) != 0 {
			t.Fatalf("an admin that cannot reach the master made tasks: %s", joinTasks(tasks))
		}
		_ = nd.signal(syscall.SIGKILL)
		nd.waitExit(t)
	}

	// grpc.ca but no [grpc.admin]: refused at start, in one sentence.
	halfDir := t.TempDir()
	half := writeSecurity(t, halfDir, "[grpc]\nca = \""+filepath.Join(pkiDir, certs.CAFile)+"\"\n")
	hc := newCluster(t, 1)
	res := runBin(t, append(detectingArgs(hc.nodes[0], wc, th), "--seaweedfs-security", half)...)
	if res.Code == 0 || !strings.Contains(res.Stderr, "sets grpc.ca but no grpc.admin.cert and grpc.admin.key") {
		t.Fatalf("admin with grpc.ca and no [grpc.admin]: %s", res)
	}
	t.Logf("admin with grpc.ca and no [grpc.admin] refused: %s", strings.TrimSpace(res.Stderr))

	// The cluster's security.toml: the volume is vacuumed over TLS.
	good := newCluster(t, 1)
	ga := good.nodes[0]
	ga.startArgs(t, append(detectingArgs(ga, wc, th), "--seaweedfs-security", secFile)...)
	good.waitStable(t, ga)
	startWorkers(t, 1, good.addrs(), "--seaweedfs-security", secFile)
	began := time.Now()
	waitVacuums(t, ga.GRPCAddr, vid, 1, "the vacuum over TLS to complete")
	t.Logf("vacuum over TLS completed %s after the admin started", time.Since(began).Round(10*time.Millisecond))
	wc.waitTopology(t, "the master to show the vacuumed volume", func(topo *seaweed.Topology) (bool, string) {
		v := topo.Volumes[vid]
		return v != nil && v.GarbageRatio() < 0.1, fmt.Sprintf("volume %d: %+v", vid, v)
	})
	locs, err := wc.lookup(vid)
	if err != nil || len(locs) == 0 {
		t.Fatalf("lookup volume %d: %v %v", vid, locs, err)
	}
	for _, f := range files {
		servers := []string{f.URL}
		if f.Vid == vid {
			servers = locs
		}
		wc.checkFiles(t, []*storedFile{f}, servers...)
	}

	// Erasure coding over TLS too (a manual task: the volume is not full):
	// the worker generates, copies (volume server to volume server, with
	// SeaweedFS's own [grpc.volume] certificate), mounts and deletes the
	// original, and every file reads back through every server.
	waitTask := func(what string, id uint64) {
		t.Helper()
		testutil.Poll(t, 120*time.Second, pollEvery, what+" over TLS to complete", func() (bool, string) {
			tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", ga.GRPCAddr, "tasks")
			if err != nil {
				return false, err.Error()
			}
			for _, tk := range tasks {
				if tk.ID == id {
					if tk.State == "failed" {
						t.Fatalf("%s failed: %s", what, tk.String())
					}
					return tk.State == "completed", tk.String()
				}
			}
			return false, joinTasks(tasks)
		})
	}
	sub := ctlJSON[submitJSON](t, "submit", ga.GRPCAddr, "task", "submit", "--type", "erasure_coding", "--volume", fmt.Sprint(vid), "--collection", collection)
	waitTask("the erasure coding", sub.ID)
	t.Logf("erasure coding over TLS completed %s after the admin started", time.Since(began).Round(10*time.Millisecond))
	var ecFiles []*storedFile
	for _, f := range files {
		if f.Vid == vid {
			ecFiles = append(ecFiles, f)
		}
	}
	for _, s := range wc.servers {
		testutil.Poll(t, 30*time.Second, pollEvery, "the erasure-coded files to read back through "+s.HTTP, func() (bool, string) {
			for _, f := range ecFiles {
				if err := wc.checkFile(s.HTTP, f); err != nil {
					return false, err.Error()
				}
			}
			return true, ""
		})
	}

	// A balance move over TLS (submitted): another volume goes to a
	// server that does not hold it.
	for _, f := range moved[1:] {
		if f.Vid != moved[0].Vid {
			t.Fatalf("set-up: the files to move are in volumes %d and %d", moved[0].Vid, f.Vid)
		}
	}
	mv := moved[0].Vid
	from, err := wc.lookup(mv)
	if err != nil || len(from) != 1 {
		t.Fatalf("lookup volume %d: %v %v", mv, from, err)
	}
	to := ""
	for _, srv := range wc.servers {
		if srv.HTTP != from[0] {
			to = srv.HTTP
			break
		}
	}
	bal := ctlJSON[submitJSON](t, "submit", ga.GRPCAddr, "task", "submit", "--type", "balance", "--volume", fmt.Sprint(mv),
		"--collection", "tlsmove", "--source", from[0], "--target", to)
	waitTask("the balance move", bal.ID)
	testutil.Poll(t, 30*time.Second, pollEvery, fmt.Sprintf("volume %d to be on %s only", mv, to), func() (bool, string) {
		locs, err := wc.lookup(mv)
		if err != nil {
			return false, err.Error()
		}
		return len(locs) == 1 && locs[0] == to, fmt.Sprint(locs)
	})
	wc.checkFiles(t, moved, to)
	t.Logf("balance move of volume %d from %s to %s over TLS completed %s after the admin started", mv, from[0], to, time.Since(began).Round(10*time.Millisecond))

	if log := ga.logTail(400); !strings.Contains(log, "mutual TLS as grpc.admin") {
		t.Errorf("the admin's log does not say it reaches SeaweedFS with mutual TLS:\n%s", log)
	}
}
