package integration

// The network of the randomized fault harness: each admin has its own
// loopback IP (all of 127/8 is local on Linux) and dials its raft peers from
// it (cluster's stream layer dials from the --raft-addr IP). Every admin
// advertises, with --raft-advertise, a TCP proxy in front of its raft
// listener; the proxy sees which admin is connecting by the source IP and
// refuses, or cuts, connections between admins the test has partitioned.
// Only raft is partitioned: workers and ctl reach every admin, and a
// follower's gRPC forwarding to the leader is not cut (a partition between
// the admins' raft network, with clients still reaching all of them).

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// partitions is the set of cut admin pairs (by IP) and the live proxied
// connections, so a new cut also breaks what is already connected.
type partitions struct {
	mu    sync.Mutex
	cut   map[[2]string]bool
	conns map[*proxied]struct{}
}

type proxied struct {
	src, dst string // admin IPs: who dialed, whose proxy
	a, b     net.Conn
}

func (p *proxied) close() {
	p.a.Close()
	p.b.Close()
}

func newPartitions() *partitions {
	return &partitions{cut: map[[2]string]bool{}, conns: map[*proxied]struct{}{}}
}

func pairKey(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

func (p *partitions) isCut(a, b string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut[pairKey(a, b)]
}

// cutPair stops all traffic between admins a and b (by IP), now and until heal.
func (p *partitions) cutPair(a, b string) {
	p.mu.Lock()
	p.cut[pairKey(a, b)] = true
	var doomed []*proxied
	for c := range p.conns {
		if pairKey(c.src, c.dst) == pairKey(a, b) {
			doomed = append(doomed, c)
			delete(p.conns, c)
		}
	}
	p.mu.Unlock()
	for _, c := range doomed {
		c.close()
	}
}

// heal lifts every cut.
func (p *partitions) heal() {
	p.mu.Lock()
	p.cut = map[[2]string]bool{}
	p.mu.Unlock()
}

// add registers a proxied connection unless its pair is cut by now.
func (p *partitions) add(c *proxied) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut[pairKey(c.src, c.dst)] {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *partitions) remove(c *proxied) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// closeAll breaks every proxied connection (the end of the test).
func (p *partitions) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = map[*proxied]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.close()
	}
}

// raftProxy forwards connections to one admin's raft listener, refusing
// those from admins cut off from it.
type raftProxy struct {
	lis    net.Listener
	target string // the admin's real raft address
	ip     string // the admin's IP
	parts  *partitions
	wg     sync.WaitGroup
}

func startRaftProxy(target, ip string, parts *partitions) (*raftProxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("raft proxy for %s: %w", target, err)
	}
	p := &raftProxy{lis: lis, target: target, ip: ip, parts: parts}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *raftProxy) addr() string { return p.lis.Addr().String() }

func (p *raftProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.lis.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(in)
		}()
	}
}

func (p *raftProxy) handle(in net.Conn) {
	src := in.RemoteAddr().(*net.TCPAddr).IP.String()
	if p.parts.isCut(src, p.ip) {
		in.Close()
		return
	}
	out, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		in.Close()
		return
	}
	c := &proxied{src: src, dst: p.ip, a: in, b: out}
	if !p.parts.add(c) {
		c.close()
		return
	}
	defer p.parts.remove(c)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
	c.close()
	<-done
}

func (p *raftProxy) close() {
	p.lis.Close()
}
