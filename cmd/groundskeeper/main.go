// Command groundskeeper is the one binary of the project: an admin node
// (admin), a maintenance worker (worker), the operator CLI (ctl) and a whole
// local system in one process (dev). It holds wiring only.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

const usage = `groundskeeper: a highly available maintenance control plane for SeaweedFS

Usage:
  groundskeeper admin --id ID --data-dir DIR --raft-addr HOST:PORT --grpc-addr HOST:PORT --peers ID=HOST:PORT,... [--bootstrap] [--metrics-addr HOST:PORT]
  groundskeeper worker --id ID --admin ADDR[,ADDR...] --data-dir DIR [--capabilities vacuum,erasure_coding,balance] [--max-concurrent 2] [--metrics-addr HOST:PORT]
  groundskeeper ctl --admin ADDR[,ADDR...] status|tasks|task|workers|capacity|peers|snapshot ... [--json]
  groundskeeper dev [--data-dir DIR]
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

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "admin":
		err = runAdmin(args[1:])
	case "worker":
		err = runWorker(args[1:])
	case "ctl":
		err = runCtl(args[1:], os.Stdout)
	case "dev":
		err = runDev(args[1:])
	case "version", "--version":
		fmt.Println("groundskeeper", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		err = usagef("unknown command %q (want admin, worker, ctl, dev or version)", args[0])
	}
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	msg := strings.TrimSpace(err.Error())
	if !strings.HasPrefix(msg, "groundskeeper") {
		msg = "groundskeeper " + args[0] + ": " + msg
	}
	fmt.Fprintln(os.Stderr, msg)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
