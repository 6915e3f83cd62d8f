package seaweed

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// grpcPortOffset is SeaweedFS's default distance from a server's HTTP port to
// its gRPC port.
const grpcPortOffset = 10000

// Address is a SeaweedFS server address in its two forms.
type Address struct {
	HTTP string // host:httpPort
	GRPC string // host:grpcPort
}

// String gives SeaweedFS's own "host:httpPort.grpcPort" form.
func (a Address) String() string {
	_, gp, _ := net.SplitHostPort(a.GRPC)
	return a.HTTP + "." + gp
}

// ParseAddress accepts "host:httpPort" (gRPC at httpPort+10000) or
// "host:httpPort.grpcPort", as SeaweedFS does.
func ParseAddress(s string) (Address, error) {
	s = strings.TrimSpace(s)
	host, ports, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return Address{}, fmt.Errorf("address %q is not host:port or host:port.grpcPort", s)
	}
	httpPart, grpcPart, dotted := strings.Cut(ports, ".")
	hp, err := parsePort(httpPart)
	if err != nil {
		return Address{}, fmt.Errorf("address %q: %w", s, err)
	}
	gp := hp + grpcPortOffset
	if dotted {
		if gp, err = parsePort(grpcPart); err != nil {
			return Address{}, fmt.Errorf("address %q: gRPC %w", s, err)
		}
	} else if gp > 65535 {
		return Address{}, fmt.Errorf("address %q: port %d + 10000 is not a valid gRPC port; give it as host:port.grpcPort", s, hp)
	}
	return Address{HTTP: net.JoinHostPort(host, strconv.Itoa(hp)), GRPC: net.JoinHostPort(host, strconv.Itoa(gp))}, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q is not a number between 1 and 65535", s)
	}
	return p, nil
}

// nodeAddress derives a data node's addresses from the master's DataNodeInfo.
func nodeAddress(id, address string, grpcPort uint32) Address {
	httpAddr := address
	if httpAddr == "" {
		httpAddr = id
	}
	// The id/address may itself carry the ".grpcPort" suffix.
	if a, err := ParseAddress(httpAddr); err == nil {
		if grpcPort != 0 {
			host, _, _ := net.SplitHostPort(a.HTTP)
			a.GRPC = net.JoinHostPort(host, strconv.Itoa(int(grpcPort)))
		}
		return a
	}
	return Address{HTTP: httpAddr, GRPC: httpAddr}
}
