package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// The oracle benchmark (-oracle): capacity-oracle lookups against a
// three-node loopback cluster whose master (seaweed/sim, in this process)
// holds a million volumes, and single-key gets against a three-member etcd
// as the yardstick.

// oracleOpts configures the oracle benchmark.
type oracleOpts struct {
	bin              string
	dir              string
	volumes, servers int
	batch            int
	clients          []int
	warmup, duration time.Duration
	etcd             string
	profileDir       string
	rounds           int
	tls              []bool // the clusters to run: plaintext (false), mutual TLS (true) or both
}

// oracleSystem loads the oracle (or etcd) with one kind of call.
type oracleSystem struct {
	procs   []*proc // the servers, for their CPU time
	label   string
	n       int
	perOp   int // lookups per call
	call    func(ctx context.Context, c, node int, seq uint64) error
	leaderI func(ctx context.Context) (int, error)
	etcd    bool     // the yardstick, not an oracle mode
	tls     bool     // an oracle mode of the cluster running mutual TLS
	debug   []string // the oracle mode's admins' --debug-addr
}

func (o *oracleSystem) name() string { return o.label }
func (o *oracleSystem) nodes() int   { return o.n }
func (o *oracleSystem) op(ctx context.Context, c, node int, seq uint64) error {
	return o.call(ctx, c, node, seq)
}
func (o *oracleSystem) leader(ctx context.Context) (int, error) { return o.leaderI(ctx) }
func (o *oracleSystem) stop()                                   {}

// mix is splitmix64: spreads sequence numbers over the volume ids without
// any shared random source between clients.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// buildSim starts the simulated master with volumes spread over servers in
// two data centres of ten racks each: a quarter of the volumes with two
// copies, sizes up to the 30 GB limit, a little garbage (one in a thousand
// above the vacuum threshold, so some tasks are pending), plus EC volumes.
func buildSim(volumes, servers int) (*sim.Cluster, []uint32, error) {
	replicas := volumes + volumes/4
	c, err := sim.New(sim.Config{Servers: servers, DataCenters: 2, RacksPerDataCenter: 10,
		MaxVolumesPerServer: int64(replicas/servers + replicas/servers/5 + 10)})
	if err != nil {
		return nil, nil, err
	}
	now := time.Now().Unix()
	ids, err := c.AddVolumesFunc(volumes, func(i int, v *sim.VolumeSpec) {
		v.Size = uint64(mix(uint64(i))%30000) << 20
		v.DeletedBytes = v.Size / 20
		if i%1000 == 7 {
			v.DeletedBytes = v.Size / 2
		}
		v.FileCount = uint64(i % 100000)
		v.DeleteCount = v.FileCount / 20
		v.ModifiedAt = now - int64(i%600)
		if i%4 == 0 {
			v.ReplicaPlacement = 1
		}
	}, sim.VolumeSpec{Collection: "bench"})
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("sim volumes: %w", err)
	}
	next := ids[len(ids)-1] + 1
	for i := range volumes / 1000 {
		shards := map[int][]uint32{}
		for sh := range uint32(sim.TotalShards) {
			si := (i + int(sh)*7) % servers
			shards[si] = append(shards[si], sh)
		}
		if err := c.AddEcVolume(sim.EcVolumeSpec{ID: next + uint32(i), Collection: "bench", Size: 30000 << 20, Shards: shards}); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("sim EC volume: %w", err)
		}
	}
	return c, ids, nil
}

// rssOf reads a process's resident set size.
func rssOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return fmt.Sprintf("%d MiB", kb>>10)
		}
	}
	return "?"
}

type oracleRow struct {
	mode  string
	tls   bool // measured on the cluster running mutual TLS
	perOp int
	round int
	r     row
	// CPU time per call of the three servers together and of this process
	// (the load generator alone: the simulated master has its own process).
	serverCPU, clientCPU time.Duration
}

// measureCPU is measureAll that also charges each call its share of the
// servers' and the load generator's CPU time in the measured window: the
// machine is shared, so calls per second alone say little about the cost.
func measureCPU(ctx context.Context, m system, procs []*proc, perOp int, clients []int, warmup, dur time.Duration) ([]oracleRow, error) {
	var out []oracleRow
	var seq uint64
	for _, c := range clients {
		if warmup > 0 {
			loadFor(ctx, m, c, warmup, -1, &seq)
		}
		srv0, self0 := procsCPU(procs), selfCPU()
		r := loadFor(ctx, m, c, dur, -1, &seq)
		srv, self := procsCPU(procs)-srv0, selfCPU()-self0
		if r.ops == 0 {
			return nil, fmt.Errorf("%s: no call succeeded with %d clients (%d errors)", m.name(), c, r.errors)
		}
		out = append(out, oracleRow{mode: m.name(), perOp: perOp, r: r,
			serverCPU: srv / time.Duration(r.ops), clientCPU: self / time.Duration(r.ops)})
	}
	return out, nil
}

// procsCPU sums the user and system time of processes (from /proc, in
// clock ticks of 10 ms).
func procsCPU(ps []*proc) time.Duration {
	var total time.Duration
	for _, p := range ps {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): utime and
		// stime are the 12th and 13th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(u+s) * 10 * time.Millisecond
	}
	return total
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runOracle(ctx context.Context, o oracleOpts) error {
	start := time.Now()
	fmt.Printf("building the simulated master: %d volumes on %d servers...\n", o.volumes, o.servers)
	sc, err := startSimProc(o.dir, o.volumes, o.servers)
	if err != nil {
		return err
	}
	defer sc.stop()
	ids := sc.ids
	fmt.Printf("  built in %v\n", time.Since(start).Round(time.Millisecond))

	// One topology poll: detection and the topology cache then stay
	// quiet during the measurement. With -tls both, two clusters (one
	// plaintext, one mutual TLS) poll the same simulated master.
	var gks []*gkCluster
	var debugs [][]string
	defer func() {
		for _, g := range gks {
			g.stop()
		}
	}()
	for _, tls := range o.tls {
		name := "plain-"
		if tls {
			name = "tls-"
		}
		g, debug, err := startAdmins(ctx, adminSpec{bin: o.bin, dir: o.dir, name: name, tls: tls, debug: true,
			extra: []string{"--master", sc.addr, "--detect-interval", "1h"}})
		if err != nil {
			return err
		}
		gks = append(gks, g)
		debugs = append(debugs, debug)
	}
	var modes []*oracleSystem
	for ci, g := range gks {
		m, err := oracleModes(ctx, g, ids, o, start)
		if err != nil {
			return err
		}
		for _, mode := range m {
			mode.tls, mode.debug = o.tls[ci], debugs[ci]
		}
		modes = append(modes, m...)
	}
	// etcd runs alongside (idle while the oracle is measured and the other
	// way round), and the modes alternate between the two, so a change in
	// the machine's background load hits both sides alike.
	var ed *etcdCluster
	if o.etcd != "off" {
		if etcdPath, lookErr := lookPath("etcd"); lookErr != nil {
			fmt.Println("etcd not found on PATH: comparison skipped (Debian: apt-get install etcd-server)")
		} else {
			if ed, err = startEtcd(ctx, etcdPath, o.dir); err != nil {
				return err
			}
			defer ed.stop()
			if err := ed.op(ctx, 0, 0, 0); err != nil { // the key the gets read: bench/0
				return err
			}
		}
	}
	etcdMode := func(label string, serializable bool) *oracleSystem {
		var req []byte
		req = protowire.AppendTag(req, 1, protowire.BytesType) // RangeRequest.key
		req = protowire.AppendBytes(req, []byte("bench/0"))
		if serializable {
			req = protowire.AppendTag(req, 7, protowire.VarintType) // RangeRequest.serializable
			req = protowire.AppendVarint(req, 1)
		}
		return &oracleSystem{procs: ed.procs, label: label, n: 3, perOp: 1, leaderI: ed.leader, etcd: true,
			call: func(ctx context.Context, c, node int, seq uint64) error {
				r := req
				var resp []byte
				return ed.conns[node].Invoke(ctx, "/etcdserverpb.KV/Range", &r, &resp)
			}}
	}
	// Each oracle mode is measured on every cluster back to back (in
	// alternating order from round to round), the etcd get of the same
	// kind right after the single-id modes.
	perCluster := len(modes) / len(gks)
	stepsOf := func(round int) []*oracleSystem {
		var steps []*oracleSystem
		for k := range perCluster {
			var same []*oracleSystem
			for ci := range gks {
				same = append(same, modes[ci*perCluster+k])
			}
			steps = append(steps, roundOrder(same, round)...)
			if ed != nil && k == 0 {
				steps = append(steps, etcdMode("serializable get", true))
			}
			if ed != nil && k == 1 {
				steps = append(steps, etcdMode("linearizable get", false))
			}
		}
		return steps
	}
	maxClients := slices.Max(o.clients)

	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(o.profileDir, "loadgen.pprof"))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// Round 0, unmeasured: an admin that has just decoded a million-volume
	// topology settles its heap (GC target, memory returned to the system)
	// in its first seconds under load, and the first mode measured paid for
	// it. Both systems get the same warm-up.
	fmt.Printf("warming up: every mode for %v, unmeasured...\n", o.warmup)
	for _, m := range stepsOf(1) {
		var seq uint64
		loadFor(ctx, m, maxClients, o.warmup, -1, &seq)
	}
	var gkRows, etcdRows []oracleRow
	for round := 1; round <= o.rounds; round++ {
		for _, m := range stepsOf(round) {
			var stopProf func()
			if o.profileDir != "" && !m.etcd {
				label := m.label
				if m.tls {
					label += "-tls"
				}
				stopProf = profileAll(ctx, m.debug, o.profileDir, fmt.Sprintf("%s-r%d", label, round), o.warmup+o.duration)
			}
			rows, err := measureCPU(ctx, m, m.procs, m.perOp, o.clients, o.warmup, o.duration)
			if stopProf != nil {
				stopProf()
			}
			if err != nil {
				return err
			}
			for _, r := range rows {
				row := r
				row.round, row.tls = round, m.tls
				if m.etcd {
					etcdRows = append(etcdRows, row)
				} else {
					gkRows = append(gkRows, row)
				}
			}
		}
	}
	var rss []string
	for _, g := range gks {
		for i, p := range g.procs {
			rss = append(rss, fmt.Sprintf("%sb%d %s", tlsPrefix(g.tls, len(gks)), i+1, rssOf(p.cmd.Process.Pid)))
		}
	}
	printOracleTable(fmt.Sprintf("groundskeeper capacity oracle: GetVolumeCapacity (3 admins, loopback, %d volumes on %d servers)", o.volumes, o.servers), gkRows)
	fmt.Printf("admin RSS after the run: %s\n", strings.Join(rss, ", "))
	if len(gks) > 1 {
		printTLSCost("capacity oracle calls", gkRows)
	}
	if ed != nil {
		printOracleTable("etcd 3-member yardstick: single-key Range (loopback)", etcdRows)
		// The goals compare etcd with plaintext: TLS's cost is shown apart.
		var plain []oracleRow
		for _, r := range gkRows {
			if !r.tls || len(gks) == 1 {
				plain = append(plain, r)
			}
		}
		printOracleGoals(plain, etcdRows, o.batch, o.rounds)
	}
	return nil
}

// tlsPrefix labels one of several clusters' admins ("tls " or "plain ").
func tlsPrefix(tls bool, clusters int) string {
	switch {
	case clusters < 2:
		return ""
	case tls:
		return "tls "
	}
	return "plain "
}

// oracleModes waits until every admin of g answers the oracle and the
// leader's detection has settled, then returns the four oracle modes
// against g.
func oracleModes(ctx context.Context, g *gkCluster, ids []uint32, o oracleOpts, start time.Time) ([]*oracleSystem, error) {
	var err error
	addrs := g.addrs
	oracles := make([]pb.CapacityOracleClient, len(g.conns))
	for i, c := range g.conns {
		oracles[i] = pb.NewCapacityOracleClient(c)
	}
	fmt.Printf("waiting for every %s admin to fetch the topology...\n", tlsLabel(g.tls))
	err = poll(ctx, 5*time.Minute, func() error {
		for _, cons := range []pb.Consistency{pb.Consistency_CONSISTENCY_STALE, pb.Consistency_CONSISTENCY_LINEARIZABLE} {
			for _, oc := range oracles {
				if _, err := oc.GetVolumeCapacity(ctx, &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{ids[0], ids[len(ids)-1]}, Consistency: cons}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("oracle not ready: %w", err)
	}
	// The leader's scheduler fetches the topology for itself and submits
	// what it detects: let that settle before measuring.
	var lastApplied uint64
	err = poll(ctx, 5*time.Minute, func() error {
		st, err := g.clients[0].Status(ctx, &pb.StatusRequest{})
		if err != nil {
			return err
		}
		if st.Maintenance.GetLastPoll() == 0 || st.Maintenance.GetVolumes() == 0 {
			return fmt.Errorf("the scheduler has not polled the master yet")
		}
		if st.AppliedIndex != lastApplied {
			lastApplied = st.AppliedIndex
			return fmt.Errorf("detection still submitting (applied index %d)", st.AppliedIndex)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scheduler not settled: %w", err)
	}
	fmt.Printf("  ready after %v (applied index %d)\n", time.Since(start).Round(time.Millisecond), lastApplied)
	var rss0 []string
	for i, p := range g.procs {
		rss0 = append(rss0, fmt.Sprintf("b%d %s", i+1, rssOf(p.cmd.Process.Pid)))
	}
	fmt.Printf("  admin RSS before measuring: %s\n", strings.Join(rss0, ", "))

	maxClients := slices.Max(o.clients)
	// Like the etcd gets, the calls go out pre-encoded and their answers are
	// not decoded, so the load generator costs the same for both systems.
	raw := make([]*grpc.ClientConn, len(addrs))
	for i, a := range addrs {
		if raw[i], err = grpc.NewClient(a, g.creds, grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}))); err != nil {
			return nil, err
		}
		g.conns = append(g.conns, raw[i]) // closed by g.stop
	}
	// Per-client buffers, reused: client c's calls are sequential.
	bufs := make([][]byte, maxClients)
	pick := func(seq uint64) uint32 { return ids[mix(seq)%uint64(len(ids))] }
	gkMode := func(label string, cons pb.Consistency, n int) *oracleSystem {
		return &oracleSystem{procs: g.procs, label: label, n: 3, perOp: n, leaderI: g.leader,
			call: func(ctx context.Context, c, node int, seq uint64) error {
				// GetVolumeCapacityRequest: volume_ids = 1 (packed), consistency = 2.
				var packed []byte
				for k := range n {
					packed = protowire.AppendVarint(packed, uint64(pick(seq*uint64(n)+uint64(k))))
				}
				req := protowire.AppendTag(bufs[c][:0], 1, protowire.BytesType)
				req = protowire.AppendBytes(req, packed)
				req = protowire.AppendTag(req, 2, protowire.VarintType)
				req = protowire.AppendVarint(req, uint64(cons))
				bufs[c] = req
				var resp []byte
				return raw[node].Invoke(ctx, "/groundskeeper.v1.CapacityOracle/GetVolumeCapacity", &req, &resp)
			}}
	}
	modes := []*oracleSystem{
		gkMode("STALE, 1 id", pb.Consistency_CONSISTENCY_STALE, 1),
		gkMode("LINEARIZABLE, 1 id", pb.Consistency_CONSISTENCY_LINEARIZABLE, 1),
		gkMode(fmt.Sprintf("STALE, %d ids", o.batch), pb.Consistency_CONSISTENCY_STALE, o.batch),
		gkMode(fmt.Sprintf("LINEARIZABLE, %d ids", o.batch), pb.Consistency_CONSISTENCY_LINEARIZABLE, o.batch),
	}
	return modes, nil
}

func printOracleTable(title string, rows []oracleRow) {
	fmt.Printf("\n%s\n", title)
	fmt.Printf("%-28s %5s %8s %12s %14s %10s %10s %8s %12s %12s\n", "mode", "round", "clients", "calls/s", "lookups/s", "p50", "p99", "errors", "server CPU", "client CPU")
	for _, r := range rows {
		mode := r.mode
		if r.tls {
			mode += ", TLS"
		}
		fmt.Printf("%-28s %5d %8d %12.0f %14.0f %10s %10s %8d %9.1f µs %9.1f µs\n", mode, r.round, r.r.clients, r.r.perSec, r.r.perSec*float64(r.perOp), ms(r.r.p50), ms(r.r.p99), r.r.errors,
			float64(r.serverCPU)/1e3, float64(r.clientCPU)/1e3)
	}
	fmt.Println("(CPU per call: the three servers together, and the load generator)")
	for _, r := range rows {
		for msg, n := range r.r.errKinds {
			fmt.Printf("  %s, %d clients: %d x %s\n", r.mode, r.r.clients, n, msg)
		}
	}
}

// printOracleGoals checks the oracle's throughput goals at the largest
// client count, in each round (whose oracle and etcd modes ran next to each
// other in time): single-id STALE at least twice etcd's serializable get,
// single-id LINEARIZABLE at least etcd's linearizable get, and batched
// STALE at least 300,000 lookups/s.
func printOracleGoals(gk, etcd []oracleRow, batch, rounds int) {
	rate := func(rows []oracleRow, mode string, round int) float64 {
		var v float64
		var c int
		for _, r := range rows {
			if r.mode == mode && r.round == round && r.r.clients >= c {
				v, c = r.r.perSec*float64(r.perOp), r.r.clients
			}
		}
		return v
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Printf("\ngoals (largest client count)\n")
	for round := 1; round <= rounds; round++ {
		ser, lin := rate(etcd, "serializable get", round), rate(etcd, "linearizable get", round)
		st, li := rate(gk, "STALE, 1 id", round), rate(gk, "LINEARIZABLE, 1 id", round)
		sb := rate(gk, fmt.Sprintf("STALE, %d ids", batch), round)
		fmt.Printf(" round %d\n", round)
		fmt.Printf("  single-id STALE %.0f/s >= 2 x etcd serializable %.0f/s (%.2fx): %s\n", st, ser, st/ser, verdict(st >= 2*ser))
		fmt.Printf("  single-id LINEARIZABLE %.0f/s >= etcd linearizable %.0f/s (%.2fx): %s\n", li, lin, li/lin, verdict(li >= lin))
		fmt.Printf("  batched STALE %.0f lookups/s >= 300000: %s\n", sb, verdict(sb >= 300000))
	}
}

// profileAll fetches a CPU profile of every admin while a mode runs.
func profileAll(ctx context.Context, debug []string, dir, label string, d time.Duration) func() {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return func() {}
	}
	done := make(chan struct{}, len(debug))
	name := strings.NewReplacer(" ", "", ",", "-").Replace(strings.ToLower(label))
	for i, a := range debug {
		go func() {
			defer func() { done <- struct{}{} }()
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", a, max(1, int(d.Seconds())))
			resp, err := http.Get(url)
			if err != nil {
				fmt.Fprintln(os.Stderr, "profile:", err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-b%d.pprof", name, i+1)))
			if err != nil {
				fmt.Fprintln(os.Stderr, "profile:", err)
				return
			}
			defer f.Close()
			_, _ = io.Copy(f, resp.Body)
		}()
	}
	return func() {
		for range debug {
			<-done
		}
	}
}
