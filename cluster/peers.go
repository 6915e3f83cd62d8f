package cluster

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Peer is one voter of the initial configuration.
type Peer struct {
	ID       string
	RaftAddr string
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateID checks a node id: 1-64 letters, digits, '.', '_' or '-'.
func ValidateID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("node id %q is invalid: use 1-64 letters, digits, '.', '_' or '-'", id)
	}
	return nil
}

// ValidateAddr checks a host:port address with a numeric port.
func ValidateAddr(what, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("%s %q is not a host:port address", what, addr)
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return fmt.Errorf("%s %q has a non-numeric port", what, addr)
		}
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%s %q has a port outside 1-65535", what, addr)
	}
	return nil
}

// ParsePeers parses "a1=127.0.0.1:7001,a2=127.0.0.1:7002" into peers sorted by id.
func ParsePeers(s string) ([]Peer, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var peers []Peer
	ids, addrs := map[string]bool{}, map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("--peers entry %q is not id=host:port", part)
		}
		if err := ValidateID(id); err != nil {
			return nil, fmt.Errorf("--peers: %w", err)
		}
		if err := ValidateAddr("--peers address", addr); err != nil {
			return nil, err
		}
		if ids[id] {
			return nil, fmt.Errorf("--peers names node %s twice", id)
		}
		if addrs[addr] {
			return nil, fmt.Errorf("--peers gives address %s to two nodes", addr)
		}
		ids[id], addrs[addr] = true, true
		peers = append(peers, Peer{ID: id, RaftAddr: addr})
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].ID < peers[j].ID })
	return peers, nil
}

// MemberIDs returns the ids of every member, voters and non-voters alike.
func MemberIDs(members []Member) []string {
	out := make([]string, len(members))
	for i, m := range members {
		out[i] = m.ID
	}
	return out
}
