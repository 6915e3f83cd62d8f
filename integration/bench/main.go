// Command bench measures groundskeeper's replicated write throughput and
// latency on a three-node loopback cluster of real admin processes, and the
// same load against a three-member etcd on the same machine in the same run
// (when an etcd binary is on PATH), and prints both tables.
//
//	go run ./integration/bench [-clients 1,16,128] [-duration 10s] [-etcd auto|off]
//
// With -oracle it measures capacity-oracle lookups instead (STALE and
// LINEARIZABLE, one id and batches of 100 per call, 1,000,000 volumes in a
// simulated master, 128 clients) next to etcd serializable and linearizable
// gets:
//
//	go run ./integration/bench -oracle [-duration 10s] [-profile DIR]
//
// -tls on runs the admins (and the load generator's calls) under mutual
// TLS, with certificates made in the run's temporary directory; -tls both
// runs a plaintext and a TLS cluster side by side, measures them in
// alternating order -rounds times, and prints the cost of TLS: the
// median calls/s and CPU per call of each:
//
//	go run ./integration/bench -tls both -rounds 3 [-oracle]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	clientsFlag := flag.String("clients", "1,16,128", "concurrent client counts")
	duration := flag.Duration("duration", 10*time.Second, "measuring time per client count")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured warm-up per client count")
	etcdMode := flag.String("etcd", "auto", "auto: compare with etcd if it is on PATH; off: skip")
	bin := flag.String("bin", "", "groundskeeper binary (default: build it)")
	target := flag.String("target", "all", "send to: all (clients spread over the three nodes) or leader")
	admins := flag.String("admins", "", "load an already running cluster at these gRPC addresses instead of starting one")
	oracleMode := flag.Bool("oracle", false, "benchmark capacity-oracle reads (1M volumes, 128 clients) against etcd gets instead of writes")
	volumes := flag.Int("volumes", 1_000_000, "-oracle: volumes in the simulated master")
	servers := flag.Int("servers", 500, "-oracle: volume servers in the simulated master")
	batch := flag.Int("batch", 100, "-oracle: volume ids per batched call")
	profileDir := flag.String("profile", "", "-oracle: save each admin's CPU profile of every mode in this directory")
	rounds := flag.Int("rounds", 1, "-oracle or -tls both: measure every mode this many times, alternating the systems' order")
	tlsFlag := flag.String("tls", "off", "off: plaintext admins; on: mutual TLS (certificates made for the run); both: each, side by side, and the cost of TLS")
	serveSimFlag := flag.Bool("serve-sim", false, "internal: run the -oracle benchmark's simulated master")
	simIDs := flag.String("sim-ids", "", "internal: with -serve-sim, write the volume ids here")
	flag.Parse()
	if *serveSimFlag {
		return serveSim(*volumes, *servers, *simIDs)
	}
	if *oracleMode {
		set := false
		flag.Visit(func(f *flag.Flag) { set = set || f.Name == "clients" })
		if !set {
			*clientsFlag = "128"
		}
	}
	var clients []int
	for _, s := range strings.Split(*clientsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-clients %q: want positive integers", *clientsFlag)
		}
		clients = append(clients, n)
	}
	tlsSet, err := tlsModes(*tlsFlag)
	if err != nil {
		return err
	}
	if *admins != "" && *tlsFlag != "off" {
		return fmt.Errorf("-tls %s starts its own clusters: it cannot be combined with -admins", *tlsFlag)
	}
	if *target != "all" && *target != "leader" {
		return fmt.Errorf("-target %q: want all or leader", *target)
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "gk-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	if *oracleMode {
		path := *bin
		if path == "" {
			if path, err = buildBinary(dir); err != nil {
				return err
			}
		}
		return runOracle(ctx, oracleOpts{bin: path, dir: dir, volumes: *volumes, servers: *servers, batch: *batch,
			clients: clients, warmup: *warmup, duration: *duration, etcd: *etcdMode, profileDir: *profileDir, rounds: max(*rounds, 1), tls: tlsSet})
	}

	if len(tlsSet) > 1 {
		path := *bin
		if path == "" {
			if path, err = buildBinary(dir); err != nil {
				return err
			}
		}
		var gks []*gkCluster
		defer func() {
			for _, g := range gks {
				g.stop()
			}
		}()
		for _, tls := range tlsSet {
			g, err := startGroundskeeper(ctx, path, dir, tls)
			if err != nil {
				return err
			}
			gks = append(gks, g)
		}
		// No etcd here: the comparison is groundskeeper with itself.
		return measureWritesTLS(ctx, gks, clients, *warmup, *duration, max(*rounds, 1))
	}

	var gk *gkCluster
	if *admins != "" {
		gk, err = connectGroundskeeper(ctx, strings.Split(*admins, ","))
	} else {
		path := *bin
		if path == "" {
			if path, err = buildBinary(dir); err != nil {
				return err
			}
		}
		gk, err = startGroundskeeper(ctx, path, dir, tlsSet[0])
	}
	if err != nil {
		return err
	}
	gkRows, err := measureAll(ctx, gk, clients, *warmup, *duration, *target == "leader")
	gk.stop()
	if err != nil {
		return err
	}
	printTable(fmt.Sprintf("groundskeeper: task submissions (3 admins, loopback, %s)", tlsLabel(tlsSet[0])), gkRows)

	if *etcdMode == "off" {
		return nil
	}
	etcdPath, lookErr := lookPath("etcd")
	if lookErr != nil {
		fmt.Println("\netcd not found on PATH: comparison skipped (Debian: apt-get install etcd-server)")
		return nil
	}
	ed, err := startEtcd(ctx, etcdPath, dir)
	if err != nil {
		return err
	}
	etcdRows, err := measureAll(ctx, ed, clients, *warmup, *duration, *target == "leader")
	ed.stop()
	if err != nil {
		return err
	}
	printTable("etcd: puts (3 members, loopback)", etcdRows)
	printRatio(gkRows, etcdRows)
	return nil
}
