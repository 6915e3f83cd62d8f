//go:build !linux

package integration

import "syscall"

// childAttr: see procattr_linux_test.go; elsewhere there is no Pdeathsig,
// and a killed test binary leaves its children running.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
