package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestPrintStatusSaysWhatIsKnown: `ctl status` shows a member whose address
// is not published yet as such (not unreachable), and a leader paused
// because another process holds SeaweedFS's admin lock: who, since when,
// and what is paused; in text and in --json.
func TestPrintStatusSaysWhatIsKnown(t *testing.T) {
	since := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	st := &pb.StatusResponse{NodeId: "a1", LeaderId: "a1", Term: 2, CommitIndex: 5, AppliedIndex: 5,
		Members: []*pb.Member{
			{Id: "a1", RaftAddr: "127.0.0.1:7001", GrpcAddr: "127.0.0.1:9001", State: "leader", Suffrage: "Voter"},
			{Id: "a2", RaftAddr: "127.0.0.1:7002", GrpcAddr: "127.0.0.1:9002", State: "follower", Suffrage: "Voter"},
			{Id: "a3", RaftAddr: "127.0.0.1:7003", State: rpc.MemberAddressUnknown, Suffrage: "Voter"},
		},
		Maintenance: &pb.Maintenance{Master: "127.0.0.1:9333.19333", MasterState: "ok", Servers: 3, Volumes: 7,
			AdminLock: "held elsewhere", AdminLockHolder: "admin-server", AdminLockSince: since.UnixNano(), MasterVacuum: "not ours to set",
			Paused: `SeaweedFS's admin lock "admin-server" is held by "admin-server"`, DetectionPaused: true, AssignmentPaused: true},
	}
	var text bytes.Buffer
	if err := printStatus(&ctlOpts{out: &text}, st); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, want := range []string{
		"a3  address unknown yet  127.0.0.1:7003  -",
		`admin lock HELD BY admin-server, another process (seen since 2026-11-25T07:00:00Z), master's own vacuum: not ours to set (another process holds the admin lock)`,
		`MAINTENANCE PAUSED (detection and assignment): SeaweedFS's admin lock "admin-server" is held by "admin-server"; running tasks continue`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "unreachable") {
		t.Errorf("status text calls something unreachable:\n%s", out)
	}

	var js bytes.Buffer
	if err := printStatus(&ctlOpts{out: &js, json: true}, st); err != nil {
		t.Fatal(err)
	}
	var got statusJSON
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatalf("status --json: %v\n%s", err, js.String())
	}
	if m := got.Members[2]; m.State != "address unknown yet" || m.GRPCAddr != "" {
		t.Errorf("--json member a3: %+v; want state %q", m, "address unknown yet")
	}
	m := got.Maintenance
	if m == nil || m.AdminLock != "held elsewhere" || m.AdminLockHolder != "admin-server" || m.AdminLockSince != "2026-11-25T07:00:00Z" ||
		!m.DetectionPaused || !m.AssignmentPaused || m.Paused == "" || m.AdminLockHeld {
		t.Errorf("--json maintenance: %+v", m)
	}
}

// TestPrintStatusTokenLost: a leader the master refuses under its own name
// (a renewal processed whose answer was lost) is not shown as another
// process holding the lock.
func TestPrintStatusTokenLost(t *testing.T) {
	since := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	st := &pb.StatusResponse{NodeId: "a1", LeaderId: "a1", Term: 2,
		Members: []*pb.Member{{Id: "a1", RaftAddr: "127.0.0.1:7001", GrpcAddr: "127.0.0.1:9001", State: "leader", Suffrage: "Voter"}},
		Maintenance: &pb.Maintenance{Master: "127.0.0.1:9333.19333", MasterState: "ok",
			AdminLock: "ours, token lost", AdminLockHolder: "groundskeeper a1", AdminLockSince: since.UnixNano(),
			Paused: "x", DetectionPaused: true, AssignmentPaused: true},
	}
	var text bytes.Buffer
	if err := printStatus(&ctlOpts{out: &text}, st); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	if want := "admin lock ours, token lost; waiting for the lease to lapse since 2026-11-25T07:00:00Z"; !strings.Contains(out, want) {
		t.Errorf("status text lacks %q:\n%s", want, out)
	}
	if strings.Contains(out, "another process") {
		t.Errorf("status text names our own lease another process's:\n%s", out)
	}
}

// TestPrintStatusShellLock: the shell lock's holder (weed admin running a
// job, a weed shell lock) is shown with since when, in text and --json.
func TestPrintStatusShellLock(t *testing.T) {
	since := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	st := &pb.StatusResponse{NodeId: "a1", LeaderId: "a1", Term: 2,
		Members: []*pb.Member{{Id: "a1", RaftAddr: "127.0.0.1:7001", GrpcAddr: "127.0.0.1:9001", State: "leader", Suffrage: "Voter"}},
		Maintenance: &pb.Maintenance{Master: "127.0.0.1:9333.19333", MasterState: "ok", AdminLock: "ours", AdminLockHeld: true,
			ShellLockHolder: "admin-plugin", ShellLockSince: since.UnixNano(),
			Paused: `SeaweedFS's "shell" lock is held by "admin-plugin"`, DetectionPaused: true, AssignmentPaused: true},
	}
	var text bytes.Buffer
	if err := printStatus(&ctlOpts{out: &text}, st); err != nil {
		t.Fatal(err)
	}
	if want := "shell lock HELD BY admin-plugin, another process (seen since 2026-11-25T07:00:00Z)"; !strings.Contains(text.String(), want) {
		t.Errorf("status text lacks %q:\n%s", want, text.String())
	}
	var js bytes.Buffer
	if err := printStatus(&ctlOpts{out: &js, json: true}, st); err != nil {
		t.Fatal(err)
	}
	var got statusJSON
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if m := got.Maintenance; m == nil || m.ShellLockHolder != "admin-plugin" || m.ShellLockSince != "2026-11-25T07:00:00Z" {
		t.Errorf("--json maintenance: %+v", m)
	}
}

// TestPrintStatusMasters: with several SeaweedFS masters, `ctl status`
// names the master leader, lists every master with its state (an
// unreachable one with why), and --json has them under maintenance.masters;
// with none leading it says so.
func TestPrintStatusMasters(t *testing.T) {
	seen := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC).UnixNano()
	masters := []*pb.SeaweedMaster{
		{Address: "10.0.0.1:9333.19333", State: "follower", Leader: "10.0.0.2:9333", Seen: seen},
		{Address: "10.0.0.2:9333.19333", State: "leader", Leader: "10.0.0.2:9333", Seen: seen},
		{Address: "10.0.0.3:9333.19333", State: "unreachable", Error: "connection refused", Seen: seen},
	}
	st := &pb.StatusResponse{NodeId: "a1", LeaderId: "a1", Term: 2,
		Members:     []*pb.Member{{Id: "a1", RaftAddr: "127.0.0.1:7001", GrpcAddr: "127.0.0.1:9001", State: "leader", Suffrage: "Voter"}},
		Maintenance: &pb.Maintenance{Master: "10.0.0.2:9333.19333", MasterState: "ok", Servers: 3, Volumes: 7, Masters: masters},
	}
	var text bytes.Buffer
	if err := printStatus(&ctlOpts{out: &text}, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"SeaweedFS master leader 10.0.0.2:9333.19333: ok, 3 volume servers, 7 volumes",
		"  master 10.0.0.1:9333.19333: follower, names 10.0.0.2:9333 as leader\n",
		"  master 10.0.0.2:9333.19333: leader\n",
		"  master 10.0.0.3:9333.19333: UNREACHABLE (connection refused)\n",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, text.String())
		}
	}

	var js bytes.Buffer
	if err := printStatus(&ctlOpts{out: &js, json: true}, st); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Maintenance struct {
			Masters []map[string]string `json:"masters"`
		} `json:"maintenance"`
	}
	if err := json.Unmarshal(js.Bytes(), &raw); err != nil {
		t.Fatalf("status --json: %v\n%s", err, js.String())
	}
	if got := raw.Maintenance.Masters; len(got) != 3 || got[1]["address"] != "10.0.0.2:9333.19333" || got[1]["state"] != "leader" ||
		got[2]["state"] != "unreachable" || got[2]["error"] != "connection refused" || got[0]["leader"] != "10.0.0.2:9333" || got[0]["seen"] != "2026-12-03T07:00:00Z" {
		t.Errorf("--json masters = %v", got)
	}

	st.Maintenance = &pb.Maintenance{Master: "10.0.0.1:9333.19333", MasterState: "unreachable", MasterError: "volume list: no SeaweedFS master leads (...)", Masters: masters}
	text.Reset()
	if err := printStatus(&ctlOpts{out: &text}, st); err != nil {
		t.Fatal(err)
	}
	if want := "SeaweedFS masters: NO MASTER LEADER REACHED (volume list: no SeaweedFS master leads (...)); detection paused"; !strings.Contains(text.String(), want) {
		t.Errorf("status text lacks %q:\n%s", want, text.String())
	}
}

// TestPrintStatusShellLockOurs: the leader's own hold of the shell lock
// (around its attempts) is shown as ours, with since when, in text and
// --json, and not as held by another process.
func TestPrintStatusShellLockOurs(t *testing.T) {
	since := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	st := &pb.StatusResponse{NodeId: "a1", LeaderId: "a1", Term: 2,
		Members: []*pb.Member{{Id: "a1", RaftAddr: "127.0.0.1:7001", GrpcAddr: "127.0.0.1:9001", State: "leader", Suffrage: "Voter"}},
		Maintenance: &pb.Maintenance{Master: "127.0.0.1:9333.19333", MasterState: "ok", AdminLock: "ours", AdminLockHeld: true,
			ShellLockOurs: true, ShellLockOursSince: since.UnixNano()},
	}
	var text bytes.Buffer
	if err := printStatus(&ctlOpts{out: &text}, st); err != nil {
		t.Fatal(err)
	}
	if want := "shell lock held by this leader around its attempts (since 2026-12-03T15:00:00Z)"; !strings.Contains(text.String(), want) || strings.Contains(text.String(), "HELD BY") {
		t.Errorf("status text lacks %q, or says another process holds it:\n%s", want, text.String())
	}
	var js bytes.Buffer
	if err := printStatus(&ctlOpts{out: &js, json: true}, st); err != nil {
		t.Fatal(err)
	}
	var got statusJSON
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if m := got.Maintenance; m == nil || !m.ShellLockOurs || m.ShellLockOursSince != "2026-12-03T15:00:00Z" || m.ShellLockHolder != "" {
		t.Errorf("--json maintenance: %+v", m)
	}
}
