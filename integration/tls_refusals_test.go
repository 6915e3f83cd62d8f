package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// tlsAdmins is a three-admin cluster of the real binary running mutual TLS
// with certificates made by `groundskeeper tls` in pki. Every command line
// carries its --tls-* flags explicitly.
type tlsAdmins struct {
	*cluster
	pki string
}

// tlsFlagsFor are the --tls-* flags of the certificate name in pki.
func tlsFlagsFor(pki, name string) []string {
	f := certs.IssuedFiles(pki, name)
	return []string{"--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key}
}

// startTLSAdmins makes a CA, a certificate per admin (for its raft and
// gRPC hosts), a reader "rita" and an operator "olga", starts three admins
// with them (and extra) and waits until they agree on a leader and a
// state.
func startTLSAdmins(t *testing.T, extra ...string) *tlsAdmins {
	t.Helper()
	c := &tlsAdmins{cluster: newCluster(t, 3)}
	c.pki = filepath.Join(c.dir, "pki")
	c.mustRun("tls", "ca", "--dir", c.pki)
	for _, nd := range c.nodes {
		var hosts []string
		for _, a := range []string{nd.RaftAddr, nd.GRPCAddr} {
			h, _, _ := net.SplitHostPort(a)
			hosts = append(hosts, h)
		}
		c.mustRun("tls", "cert", "--dir", c.pki, "--role", "admin", "--name", nd.ID, "--host", strings.Join(hosts, ","))
		nd.startArgs(t, append(append(nd.args(), tlsFlagsFor(c.pki, nd.ID)...), extra...)...)
	}
	c.mustRun("tls", "cert", "--dir", c.pki, "--role", "reader", "--name", "rita")
	c.mustRun("tls", "cert", "--dir", c.pki, "--role", "operator", "--name", "olga")
	c.state(t)
	return c
}

func (c *tlsAdmins) mustRun(args ...string) {
	c.t.Helper()
	if res := runBin(c.t, args...); res.Code != 0 {
		c.t.Fatalf("groundskeeper %s: %s", strings.Join(args, " "), res)
	}
}

// ctlAs runs ctl against admin with who's certificate.
func (c *tlsAdmins) ctlAs(who, admin string, args ...string) cmdResult {
	c.t.Helper()
	return runBin(c.t, append(append([]string{"ctl", "--admin", admin}, tlsFlagsFor(c.pki, who)...), args...)...)
}

// tlsClusterState is what the refusal tests compare before and after.
type tlsClusterState struct {
	Leader string
	Term   uint64
	Hash   string
}

// state waits until the three admins, asked by a reader, report TLS, one
// leader and one state hash, and returns them with the highest term seen.
func (c *tlsAdmins) state(t *testing.T) tlsClusterState {
	t.Helper()
	var out tlsClusterState
	eventually(t, "the TLS admins to agree on a leader and a state hash", func() (bool, string) {
		out = tlsClusterState{}
		for _, nd := range c.nodes {
			res := c.ctlAs("rita", nd.GRPCAddr, "status", "--json", "--timeout", "5s")
			if res.Code != 0 {
				return false, res.String()
			}
			var st struct {
				LeaderID  string `json:"leader_id"`
				Term      uint64 `json:"term"`
				StateHash string `json:"state_hash"`
				TLS       bool   `json:"tls"`
			}
			if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil {
				return false, err.Error()
			}
			switch {
			case !st.TLS:
				return false, nd.ID + " does not report TLS"
			case st.LeaderID == "" || st.StateHash == "":
				return false, nd.ID + " knows no leader or state yet"
			case out.Leader != "" && (st.LeaderID != out.Leader || st.StateHash != out.Hash):
				return false, fmt.Sprintf("%s: leader %s hash %.12s; another: leader %s hash %.12s", nd.ID, st.LeaderID, st.StateHash, out.Leader, out.Hash)
			}
			out.Leader, out.Hash, out.Term = st.LeaderID, st.StateHash, max(out.Term, st.Term)
		}
		return true, ""
	})
	return out
}

// attackerTLS is a client configuration that trusts the cluster's CA (so
// the client side accepts the admin, and any refusal is the admin's) and
// presents the given key pair, or none.
func attackerTLS(t *testing.T, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "127.0.0.1"}
	if certFile != "" {
		// tls.LoadX509KeyPair, not certs.Load: Load refuses an expired
		// certificate, and here the admin must be the one refusing it.
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		// Always presented: with Certificates, Go's client sends none
		// when the server's request names other CAs.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	}
	return cfg
}

// dialLayer is a raft.StreamLayer that only dials (plaintext, or TLS with
// a configuration): an attacker's raft transport.
type dialLayer struct {
	tls    *tls.Config
	closed chan struct{}
}

func (d *dialLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	dl := &net.Dialer{Timeout: timeout}
	if d.tls == nil {
		return dl.Dial("tcp", string(addr))
	}
	return tls.DialWithDialer(dl, "tcp", string(addr), d.tls)
}

func (d *dialLayer) Accept() (net.Conn, error) {
	<-d.closed
	return nil, errors.New("closed")
}

func (d *dialLayer) Close() error {
	select {
	case <-d.closed:
	default:
		close(d.closed)
	}
	return nil
}

func (d *dialLayer) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// forgeAppendEntries sends raftAddr an AppendEntries from "leader" id with
// a term far ahead and one command entry (what the attack in issue 11 put
// into a follower), over cfg (nil: plaintext), and returns raft's error.
func forgeAppendEntries(raftAddr, id string, term uint64, cfg *tls.Config) error {
	layer := &dialLayer{tls: cfg, closed: make(chan struct{})}
	tr := raft.NewNetworkTransport(layer, 1, 10*time.Second, io.Discard)
	defer tr.Close()
	req := &raft.AppendEntriesRequest{
		RPCHeader:         raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(raftAddr)},
		Term:              term,
		PrevLogEntry:      0,
		PrevLogTerm:       0,
		Entries:           []*raft.Log{{Index: 1, Term: term, Type: raft.LogCommand, Data: []byte{1, 2, 3}}},
		LeaderCommitIndex: 1,
	}
	var resp raft.AppendEntriesResponse
	return tr.AppendEntries(raft.ServerID(id), raft.ServerAddress(raftAddr), req, &resp)
}

// handshakeAlert completes a TLS handshake with addr over cfg and reads:
// a server that refuses the client's certificate answers with an alert
// (in TLS 1.3 after the client's side of the handshake is done), which
// the returned error carries; nil means the server kept the connection
// open for 10 s.
func handshakeAlert(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		return errors.New("the server sent data to a refused client")
	}
	return err
}

// garbageCloses writes random bytes (first a plain ASCII one: neither a
// TLS record nor a probe) to addr in plaintext and reports whether the
// admin closed the connection within 10 s (a read ending in EOF or a
// reset, not in the deadline).
func garbageCloses(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	junk := make([]byte, 4096)
	if _, err := rand.Read(junk); err != nil {
		return err
	}
	junk[0] = 'G'
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(junk); err != nil {
		return nil // already closed by the admin
	}
	buf := make([]byte, 512)
	for {
		_, err := conn.Read(buf)
		var ne net.Error
		switch {
		case err == nil:
			continue // an alert or GOAWAY: read on until the close
		case errors.As(err, &ne) && ne.Timeout():
			return fmt.Errorf("the connection stayed open after 4 KiB of garbage: %w", err)
		default:
			return nil // EOF, reset: closed
		}
	}
}

// ctlNoCertificate runs ctl with no TLS flags and no GROUNDSKEEPER_TLS_*
// variables, straight through exec (not runBin, which may add the
// harness's TLS flags).
func ctlNoCertificate(t *testing.T, admin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"ctl", "--admin", admin}, args...)...)
	for _, e := range cleanEnv() {
		if !strings.HasPrefix(e, "GROUNDSKEEPER_TLS_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.SysProcAttr = childAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ctl %s without a certificate did not finish within %s: %s", strings.Join(args, " "), cmdTimeout, out.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run ctl: %v", err)
	}
	if report, ok := raceReportIn(out.String()); ok {
		t.Errorf("ctl without a certificate: the race detector reported a data race:\n%s", report)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestTLSRefusalsLeaveStateUnchanged: against three admins of the real
// binary over mutual TLS, a client with no certificate, with one from
// another CA (an operator, and an admin named like a member), and with an
// expired one from the cluster's own CA is refused by the admin in the TLS
// handshake, on the gRPC port and on the raft port (a forged AppendEntries
// of a far higher term); a reader's certificate is refused on the raft
// port; plaintext (a gRPC client, ctl without certificate, a forged
// AppendEntries) and random bytes are refused on both ports. Afterwards
// the admins agree on the same leader and state hash as before, no term
// moved to the forged one, and the cluster still takes an operator's
// submission.
func TestTLSRefusalsLeaveStateUnchanged(t *testing.T) {
	c := startTLSAdmins(t)
	all := strings.Join(c.addrs(), ",")
	// Some state worth keeping: one task.
	if res := c.ctlAs("olga", all, "task", "submit", "--type", "vacuum", "--volume", "7"); res.Code != 0 {
		t.Fatalf("operator's submit: %s", res)
	}

	// The attackers' certificates. Another CA, with `groundskeeper tls`:
	// an operator, and an admin named like a member.
	other := filepath.Join(c.dir, "other-ca")
	c.mustRun("tls", "ca", "--dir", other)
	c.mustRun("tls", "cert", "--dir", other, "--role", "operator", "--name", "mallory")
	c.mustRun("tls", "cert", "--dir", other, "--role", "admin", "--name", c.nodes[0].ID)
	// Expired, signed by the cluster's own CA (a copy of it, so the admin
	// impostor's files do not clash with the member's).
	expiredDir := filepath.Join(c.dir, "expired")
	if err := os.MkdirAll(expiredDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{certs.CAFile, certs.CAKeyFile} {
		b, err := os.ReadFile(filepath.Join(c.pki, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(expiredDir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	from, until := time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	for _, who := range []struct {
		role certs.Role
		name string
	}{{certs.RoleOperator, "olga"}, {certs.RoleAdmin, c.nodes[0].ID}} {
		if _, err := certs.IssueBetween(expiredDir, who.role, who.name, nil, from, until); err != nil {
			t.Fatal(err)
		}
	}

	caFile := filepath.Join(c.pki, certs.CAFile)
	pair := func(dir, name string) (string, string) {
		f := certs.IssuedFiles(dir, name)
		return f.Cert, f.Key
	}
	type attacker struct {
		name string
		cfg  *tls.Config
		// alert is the TLS alert the admin sends (Go's wording on the
		// client side).
		alert string
		// raftOnly: the certificate is good for gRPC (where the method
		// decides), not for raft (admins only).
		raftOnly bool
	}
	cert, key := pair(other, "mallory")
	otherOp := attackerTLS(t, caFile, cert, key)
	cert, key = pair(other, c.nodes[0].ID)
	otherAdmin := attackerTLS(t, caFile, cert, key)
	cert, key = pair(expiredDir, "olga")
	expiredOp := attackerTLS(t, caFile, cert, key)
	cert, key = pair(expiredDir, c.nodes[0].ID)
	expiredAdmin := attackerTLS(t, caFile, cert, key)
	cert, key = pair(c.pki, "rita")
	reader := attackerTLS(t, caFile, cert, key)
	attackers := []attacker{
		{"no certificate", attackerTLS(t, caFile, "", ""), "certificate required", false},
		{"another CA's operator", otherOp, "unknown certificate authority", false},
		{"another CA's admin " + c.nodes[0].ID, otherAdmin, "unknown certificate authority", false},
		{"an expired operator", expiredOp, "expired certificate", false},
		{"an expired admin " + c.nodes[0].ID, expiredAdmin, "expired certificate", false},
		{"a reader on raft", reader, "bad certificate", true},
	}

	before := c.state(t)
	t.Logf("before: leader %s, term %d, state hash %.16s", before.Leader, before.Term, before.Hash)
	forgedTerm := before.Term + 100
	submit := &pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 999}
	grpcCall := func(addr string, creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = pb.NewAdminClient(conn).SubmitTask(ctx, submit)
		return err
	}
	for _, nd := range c.nodes {
		for _, a := range attackers {
			if !a.raftOnly {
				// gRPC's error may be its own write meeting the closed
				// connection: the alert is read on a bare connection.
				if err := grpcCall(nd.GRPCAddr, credentials.NewTLS(a.cfg)); status.Code(err) != codes.Unavailable {
					t.Errorf("gRPC %s, %s: %v; want Unavailable", nd.ID, a.name, err)
				}
				if err := handshakeAlert(nd.GRPCAddr, a.cfg); err == nil || !strings.Contains(err.Error(), a.alert) {
					t.Errorf("gRPC port of %s, %s: %v; want the admin's TLS alert %q", nd.ID, a.name, err, a.alert)
				}
			}
			err := forgeAppendEntries(nd.RaftAddr, c.nodes[0].ID, forgedTerm, a.cfg)
			if err == nil || !strings.Contains(err.Error(), a.alert) {
				t.Errorf("raft %s, %s: forged AppendEntries: %v; want the admin's TLS alert %q", nd.ID, a.name, err, a.alert)
			}
		}
		// Plaintext: a gRPC client, a forged AppendEntries, and garbage.
		if err := grpcCall(nd.GRPCAddr, insecure.NewCredentials()); status.Code(err) != codes.Unavailable {
			t.Errorf("plaintext gRPC to %s: %v; want Unavailable", nd.ID, err)
		}
		if err := forgeAppendEntries(nd.RaftAddr, c.nodes[0].ID, forgedTerm, nil); err == nil {
			t.Errorf("plaintext forged AppendEntries to %s: accepted", nd.ID)
		}
		for port, addr := range map[string]string{"raft": nd.RaftAddr, "gRPC": nd.GRPCAddr} {
			if err := garbageCloses(addr); err != nil {
				t.Errorf("garbage to %s's %s port: %v", nd.ID, port, err)
			}
		}
	}
	// The real ctl without a certificate (plaintext) gets nothing.
	if code, out := ctlNoCertificate(t, all, "task", "submit", "--type", "vacuum", "--volume", "999", "--timeout", "5s"); code == 0 {
		t.Errorf("ctl without a certificate submitted: %s", out)
	}
	// ctl with another CA's operator certificate: its own side refuses the
	// admin (another CA), so nothing is sent either.
	if res := c.ctlAs("mallory", all, "status", "--timeout", "5s"); res.Code == 0 {
		t.Errorf("ctl with another CA's certificate got an answer: %s", res)
	}

	after := c.state(t)
	t.Logf("after: leader %s, term %d, state hash %.16s", after.Leader, after.Term, after.Hash)
	if after.Hash != before.Hash {
		t.Errorf("the state hash changed from %.16s to %.16s: a refused client changed the state", before.Hash, after.Hash)
	}
	// An election on this loaded machine may bump the term a little; the
	// forged term would have put it at least 100 ahead.
	if after.Term >= forgedTerm {
		t.Errorf("term %d: a forged AppendEntries (term %d) reached raft", after.Term, forgedTerm)
	}
	if after.Leader != before.Leader {
		t.Logf("the leader moved from %s to %s (term %d to %d): an election, not the forged term", before.Leader, after.Leader, before.Term, after.Term)
	}
	for _, nd := range c.nodes {
		if !nd.running() {
			t.Errorf("%s exited: %s", nd.ID, nd.logTail(20))
		}
	}
	res := c.ctlAs("rita", all, "tasks", "--json")
	if res.Code != 0 || strings.Contains(res.Stdout, `"volume_id": 999`) || strings.Contains(res.Stdout, `"volume_id":999`) {
		t.Errorf("tasks after the refusals: %s; want readable, with no task of volume 999", res)
	}
	if res := c.ctlAs("olga", all, "task", "submit", "--type", "vacuum", "--volume", "8"); res.Code != 0 {
		t.Errorf("the cluster refuses an operator's submit after the attacks: %s", res)
	}
}
