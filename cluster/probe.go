package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The probe protocol shares the raft port. hashicorp/raft's NetworkTransport
// starts every connection with one rpc type byte (0-4 in raft v1.8:
// AppendEntries, RequestVote, InstallSnapshot, TimeoutNow, RequestPreVote);
// a connection that starts with probeMagic instead is ours. The client sends
// the magic byte and a version byte; the server answers with a 4-byte
// big-endian length and that many bytes of JSON (a ProbeInfo), then closes.
const (
	probeMagic   byte = 0xA7
	probeVersion byte = 1
	// maxProbeSize caps an answer: the client refuses a longer one before
	// allocating for it.
	maxProbeSize = 64 << 10
	// probeTimeout bounds one probe (dial, request, answer) and the time a
	// server waits for a connection's first bytes.
	probeTimeout = 3 * time.Second
)

// ProbeInfo is what a node tells a peer that asks whether it may start.
type ProbeInfo struct {
	ID string `json:"id"`
	// HasState: the node has raft state (a log, a term, a snapshot or a
	// configuration).
	HasState bool `json:"has_state"`
	// Incarnation identifies this life of the node's raft store: a wiped
	// data dir comes back with a new one.
	Incarnation string `json:"incarnation"`
	// WaitingToBootstrap: the node is empty, started with --bootstrap and
	// has not started raft yet.
	WaitingToBootstrap bool `json:"waiting_to_bootstrap"`
	// Proposed, while WaitingToBootstrap, is the configuration the node
	// would bootstrap (its --peers, id → raft address): bootstrappers
	// bootstrap only when they all propose the same one.
	Proposed map[string]string `json:"proposed,omitempty"`
	// Members is the node's latest raft configuration, id → raft address:
	// a starting node probes these too, as its --peers may be stale.
	Members map[string]string `json:"members,omitempty"`
	// Leader is the leader id the node knows ("" : none).
	Leader string `json:"leader,omitempty"`
	// Bootstrap is the node's bootstrap record: for each peer of the
	// cluster it bootstrapped, the incarnation that peer had then.
	Bootstrap map[string]string `json:"bootstrap,omitempty"`
	// MaxCommandVersion is the highest command version the node's build
	// applies (0: a build that does not say, which applies the base one).
	MaxCommandVersion uint32 `json:"max_command_version,omitempty"`
}

func (p ProbeInfo) lists(id string) bool {
	_, ok := p.Members[id]
	return ok
}

// newIncarnation returns 16 random bytes in hex.
func newIncarnation() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("incarnation: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// writeProbeAnswer writes info as one length-prefixed JSON frame.
func writeProbeAnswer(w io.Writer, info ProbeInfo) error {
	body, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("encode probe answer: %w", err)
	}
	if len(body) > maxProbeSize {
		return fmt.Errorf("probe answer of %d bytes exceeds %d", len(body), maxProbeSize)
	}
	frame := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	copy(frame[4:], body)
	_, err = w.Write(frame)
	return err
}

// readProbeAnswer reads one frame written by writeProbeAnswer, refusing a
// length above maxProbeSize before allocating anything for it.
func readProbeAnswer(r io.Reader) (ProbeInfo, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return ProbeInfo{}, fmt.Errorf("read probe answer: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxProbeSize {
		return ProbeInfo{}, fmt.Errorf("probe answer of %d bytes exceeds %d", n, maxProbeSize)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return ProbeInfo{}, fmt.Errorf("read probe answer: %w", err)
	}
	var info ProbeInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return ProbeInfo{}, fmt.Errorf("decode probe answer: %w", err)
	}
	return info, nil
}

// serveProbe answers a probe connection whose magic byte was already read.
func serveProbe(conn net.Conn, r *bufio.Reader, info func() ProbeInfo) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(probeTimeout))
	v, err := r.ReadByte()
	if err != nil || v != probeVersion {
		return
	}
	_ = writeProbeAnswer(conn, info())
}

// probePeer asks the node at addr for its ProbeInfo, dialing from the
// stream layer's bind IP like raft does.
func (s *streamLayer) probePeer(ctx context.Context, addr string) (ProbeInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	d := s.dialer
	var conn net.Conn
	var err error
	if s.tls != nil {
		conn, err = s.dialTLS(ctx, &d, addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return ProbeInfo{}, err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write([]byte{probeMagic, probeVersion}); err != nil {
		return ProbeInfo{}, fmt.Errorf("send probe: %w", err)
	}
	info, err := readProbeAnswer(conn)
	if err != nil && errors.Is(err, io.EOF) {
		return ProbeInfo{}, fmt.Errorf("%s closed the probe without an answer (not started yet, or an older groundskeeper)", addr)
	}
	return info, err
}
