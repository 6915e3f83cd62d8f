package integration

import "syscall"

// childAttr starts a child process (an admin, a worker, a weed server) in
// a process group of its own, so the tests can signal it and whatever it
// started, and has the kernel kill it when the test process dies: a test
// binary killed by a timeout or by hand otherwise leaves its clusters
// running, holding ports and CPU for the next run.
//
// Pdeathsig fires when the thread that started the child exits, not the
// process; Go keeps its threads for the life of the process (only a
// goroutine that exits while locked to its thread takes the thread with
// it, and these tests lock none), so here the two are the same.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
