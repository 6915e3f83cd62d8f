package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The oracle benchmark's simulated master runs in a child process of its
// own (this binary with -serve-sim): its million-volume heap would
// otherwise be marked by every GC cycle of the load generator, a cost the
// generator charges to the oracle and etcd calls alike.

// serveSim is the child: it builds the simulated master, writes the volume
// ids to idsPath, prints "ready ADDR" and serves until stdin closes.
func serveSim(volumes, servers int, idsPath string) error {
	sc, ids, err := buildSim(volumes, servers)
	if err != nil {
		return err
	}
	defer sc.Close()
	buf := make([]byte, 4*len(ids))
	for i, id := range ids {
		binary.LittleEndian.PutUint32(buf[4*i:], id)
	}
	if err := os.WriteFile(idsPath, buf, 0o644); err != nil {
		return err
	}
	fmt.Printf("ready %s\n", sc.MasterServerAddress())
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent's end closes when it exits
	return nil
}

// simProc is the parent's handle on the child.
type simProc struct {
	cmd   *exec.Cmd
	stdin io.Closer
	addr  string
	ids   []uint32
}

func startSimProc(dir string, volumes, servers int) (*simProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	idsPath := filepath.Join(dir, "sim-ids")
	cmd := exec.Command(self, "-serve-sim", "-volumes", fmt.Sprint(volumes), "-servers", fmt.Sprint(servers), "-sim-ids", idsPath)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = childAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the simulated master: %w", err)
	}
	p := &simProc{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if err != nil || !ok {
		p.stop()
		return nil, fmt.Errorf("the simulated master did not start (%q): %v", line, err)
	}
	p.addr = addr
	raw, err := os.ReadFile(idsPath)
	if err != nil {
		p.stop()
		return nil, err
	}
	for i := 0; i+4 <= len(raw); i += 4 {
		p.ids = append(p.ids, binary.LittleEndian.Uint32(raw[i:]))
	}
	if len(p.ids) == 0 {
		p.stop()
		return nil, fmt.Errorf("the simulated master holds no volumes")
	}
	return p, nil
}

func (p *simProc) stop() {
	p.stdin.Close()
	waitOrKill(p.cmd)
}
