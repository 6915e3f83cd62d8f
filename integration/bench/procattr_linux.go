package main

import "syscall"

// childAttr starts a child (an admin, the simulated master) in a process
// group of its own and has the kernel kill it when the benchmark dies, so
// a benchmark killed by hand leaves nothing running. See
// integration/procattr_linux_test.go for why Pdeathsig, which is tied to
// the starting thread, is safe in Go.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
