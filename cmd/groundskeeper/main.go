// Command groundskeeper is the one binary of the project: an admin node
// (admin), a maintenance worker (worker), the operator CLI (ctl), a whole
// local system in one process (dev) and the certificate maker (tls). It
// holds wiring only.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `groundskeeper: a highly available maintenance control plane for SeaweedFS

Usage:
  groundskeeper admin --id ID --data-dir DIR --raft-addr HOST:PORT --grpc-addr HOST:PORT --peers ID=HOST:PORT,... [--bootstrap] [--metrics-addr HOST:PORT]
  groundskeeper worker --id ID --admin ADDR[,ADDR...] --data-dir DIR [--capabilities vacuum,erasure_coding,balance] [--max-concurrent 2] [--metrics-addr HOST:PORT]
  groundskeeper ctl --admin ADDR[,ADDR...] status|tasks|task|workers|capacity|peers|snapshot ... [--json]
  groundskeeper dev [--data-dir DIR]
  groundskeeper tls ca --dir DIR
  groundskeeper tls cert --dir DIR --role admin|worker|operator|reader --name NAME [--host H,...] [--days N]
  groundskeeper version

Run "groundskeeper COMMAND --help" for the flags of a command.
`

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

var version = "dev"

func main() {
	// An explicit GOGC from the environment wins over the adaptive target.
	if os.Getenv("GOGC") == "" {
		adaptGC()
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int { return runIO(args, os.Stdout, os.Stderr) }

// runIO is run printing the output of the commands that take a writer (ctl,
// tls, help) to stdout and every error to stderr.
func runIO(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "admin":
		err = runAdmin(args[1:])
	case "worker":
		err = runWorker(args[1:])
	case "ctl":
		err = runCtl(args[1:], stdout)
	case "dev":
		err = runDev(args[1:])
	case "tls":
		err = runTLS(args[1:], stdout)
	case "version", "--version":
		fmt.Fprintln(stdout, "groundskeeper", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = usagef("unknown command %q (want admin, worker, ctl, dev, tls or version)", args[0])
	}
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	msg := strings.TrimSpace(err.Error())
	if !strings.HasPrefix(msg, "groundskeeper") {
		msg = "groundskeeper " + args[0] + ": " + msg
	}
	fmt.Fprintln(stderr, msg)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
