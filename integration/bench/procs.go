package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
)

func lookPath(name string) (string, error) { return exec.LookPath(name) }

// buildBinary builds groundskeeper from the module this command lives in.
func buildBinary(dir string) (string, error) {
	out := filepath.Join(dir, "groundskeeper")
	cmd := exec.Command("go", "build", "-o", out, "github.com/groundskeeper-dev/groundskeeper/cmd/groundskeeper")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build groundskeeper: %w", err)
	}
	return out, nil
}

type proc struct {
	cmd *exec.Cmd
	log *os.File
}

func startProc(logPath, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return &proc{cmd: cmd, log: f}, nil
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	waitOrKill(p.cmd)
	p.log.Close()
}

// waitOrKill waits for cmd, just asked to exit, killing its process group
// if it has not exited within 10 s.
func waitOrKill(cmd *exec.Cmd) {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// memberList is a three-member cluster's "name=address" list, each entry
// format applied to the member's number (1 to 3) and its port, the first
// three of ports.
func memberList(format string, ports []int) string {
	var out []string
	for i := 0; i < 3; i++ {
		out = append(out, fmt.Sprintf(format, i+1, ports[i]))
	}
	return strings.Join(out, ",")
}

// procSet is the processes of a benchmarked cluster and a connection to
// each.
type procSet struct {
	procs []*proc
	conns []*grpc.ClientConn
}

func (s *procSet) stop() {
	for _, c := range s.conns {
		c.Close()
	}
	for _, p := range s.procs {
		p.stop()
	}
}

// poll retries fn until it succeeds or the deadline passes.
func poll(ctx context.Context, d time.Duration, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		if last = fn(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
