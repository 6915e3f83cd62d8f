package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
)

// The cost of TLS (-tls on|both): the admins run with mutual TLS
// (certificates issued with the certs package, as `groundskeeper tls`
// does, into the run's temporary directory) and the load generator calls
// them with an operator certificate. With -tls both a plaintext cluster
// and a TLS cluster run side by side, idle while the other is measured,
// and every round measures them in alternating order.

// tlsModes parses -tls.
func tlsModes(s string) ([]bool, error) {
	switch s {
	case "off":
		return []bool{false}, nil
	case "on":
		return []bool{true}, nil
	case "both":
		return []bool{false, true}, nil
	}
	return nil, fmt.Errorf("-tls %q: want off, on or both", s)
}

// adminSpec is one benchmarked three-admin cluster.
type adminSpec struct {
	bin, dir string
	// name prefixes the admins' data directories and logs, so two
	// clusters can share the run's directory.
	name  string
	tls   bool
	extra []string // more admin flags
	// debug gives every admin a --debug-addr (returned by startAdmins).
	debug bool
}

// pkiFor makes a CA, a certificate for each admin b1..b3 and an operator
// certificate for the load generator in dir, and returns the admins' TLS
// flags and the load generator's credentials.
func pkiFor(dir string) (func(id string) []string, grpc.DialOption, error) {
	if _, err := certs.NewCA(dir); err != nil {
		return nil, nil, err
	}
	for i := 1; i <= 3; i++ {
		if _, err := certs.Issue(dir, certs.RoleAdmin, fmt.Sprintf("b%d", i), nil, 0); err != nil {
			return nil, nil, err
		}
	}
	if _, err := certs.Issue(dir, certs.RoleOperator, "bench", nil, 0); err != nil {
		return nil, nil, err
	}
	src, err := certs.Load(certs.IssuedFiles(dir, "bench"), certs.Options{})
	if err != nil {
		return nil, nil, err
	}
	flags := func(id string) []string {
		f := certs.IssuedFiles(dir, id)
		return []string{"--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key}
	}
	return flags, rpc.ClientCredentials(src, certs.RoleAdmin), nil
}

// startAdmins starts a three-admin cluster on loopback and connects to it
// (with TLS, as an operator) once it has formed.
func startAdmins(ctx context.Context, s adminSpec) (*gkCluster, []string, error) {
	ports, err := testutil.FreePorts(9)
	if err != nil {
		return nil, nil, err
	}
	g := &gkCluster{creds: rpc.ClientCredentials(nil), tls: s.tls}
	tlsFlags := func(string) []string { return nil }
	if s.tls {
		if tlsFlags, g.creds, err = pkiFor(filepath.Join(s.dir, s.name+"pki")); err != nil {
			return nil, nil, fmt.Errorf("certificates: %w", err)
		}
	}
	peers := memberList("b%d=127.0.0.1:%d", ports)
	var addrs, debug []string
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("b%d", i+1)
		grpcAddr := fmt.Sprintf("127.0.0.1:%d", ports[3+i])
		args := []string{"admin", "--id", id,
			"--data-dir", filepath.Join(s.dir, s.name+id), "--raft-addr", fmt.Sprintf("127.0.0.1:%d", ports[i]),
			"--grpc-addr", grpcAddr, "--peers", peers, "--bootstrap", "--log-level", "warn"}
		args = append(append(args, tlsFlags(id)...), s.extra...)
		if s.debug {
			debugAddr := fmt.Sprintf("127.0.0.1:%d", ports[6+i])
			args = append(args, "--debug-addr", debugAddr)
			debug = append(debug, debugAddr)
		}
		p, err := startProc(filepath.Join(s.dir, s.name+id+".log"), s.bin, args...)
		if err != nil {
			g.stop()
			return nil, nil, err
		}
		g.procs = append(g.procs, p)
		addrs = append(addrs, grpcAddr)
	}
	if err := g.connect(ctx, addrs); err != nil {
		g.stop()
		return nil, nil, err
	}
	return g, debug, nil
}

// tlsLabel names a cluster's transport in tables.
func tlsLabel(on bool) string {
	if on {
		return "mutual TLS"
	}
	return "plaintext"
}

// roundOrder is the order in which round r measures the clusters: the
// given order in odd rounds, reversed in even ones, so neither always runs
// first (on a shared machine the background load drifts).
func roundOrder[T any](xs []T, r int) []T {
	out := slices.Clone(xs)
	if r%2 == 0 {
		slices.Reverse(out)
	}
	return out
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// measureWritesTLS measures task submissions against each cluster, rounds
// times in alternating order, and prints every round and the medians.
func measureWritesTLS(ctx context.Context, gks []*gkCluster, clients []int, warmup, dur time.Duration, rounds int) error {
	var rows []oracleRow
	for r := 1; r <= rounds; r++ {
		for _, g := range roundOrder(gks, r) {
			out, err := measureCPU(ctx, g, g.procs, 1, clients, warmup, dur)
			if err != nil {
				return err
			}
			for _, row := range out {
				row.mode, row.tls, row.round = "submit", g.tls, r
				rows = append(rows, row)
			}
		}
	}
	printOracleTable("groundskeeper: task submissions (3 admins, loopback)", rows)
	if len(gks) > 1 {
		printTLSCost("task submissions", rows)
	}
	return nil
}

// printTLSCost prints, for each mode and client count, the median calls/s
// and CPU per call over the rounds, plaintext and TLS, and TLS's ratio to
// plaintext.
func printTLSCost(what string, rows []oracleRow) {
	fmt.Printf("\nthe cost of TLS: %s (medians over the rounds)\n", what)
	fmt.Printf("%-22s %8s %14s %14s %8s %14s %14s %8s\n", "mode", "clients", "plain calls/s", "TLS calls/s", "ratio", "plain CPU/call", "TLS CPU/call", "ratio")
	type key struct {
		mode    string
		clients int
	}
	var keys []key
	rate, cpu := map[key]*[2][]float64{}, map[key]*[2][]float64{}
	for _, r := range rows {
		k := key{r.mode, r.r.clients}
		if rate[k] == nil {
			keys = append(keys, k)
			rate[k], cpu[k] = &[2][]float64{}, &[2][]float64{}
		}
		i := 0
		if r.tls {
			i = 1
		}
		rate[k][i] = append(rate[k][i], r.r.perSec)
		cpu[k][i] = append(cpu[k][i], float64(r.serverCPU+r.clientCPU)/1e3)
	}
	for _, k := range keys {
		pr, tr, pc, tc := median(rate[k][0]), median(rate[k][1]), median(cpu[k][0]), median(cpu[k][1])
		if pr == 0 || pc == 0 {
			continue
		}
		fmt.Printf("%-22s %8d %14.0f %14.0f %7.2fx %11.1f µs %11.1f µs %7.2fx\n", k.mode, k.clients, pr, tr, tr/pr, pc, tc, tc/pc)
	}
	fmt.Println("(CPU per call: the three admins and the load generator together; on a shared machine calls/s is noisy, CPU per call less so)")
}
