//go:build !linux

package main

import "syscall"

// childAttr: see procattr_linux.go; elsewhere there is no Pdeathsig.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
