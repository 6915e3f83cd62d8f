package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// JSON shapes of docs/architecture.md §11; field names are a contract.

type memberJSON struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raft_addr"`
	GRPCAddr     string `json:"grpc_addr"`
	State        string `json:"state"`
	Suffrage     string `json:"suffrage"`
	AppliedIndex uint64 `json:"applied_index"`
	// MaxCommandVersion is the highest command version the member's build
	// applies, as it advertised it (0: not advertised yet).
	MaxCommandVersion uint32 `json:"max_command_version"`
}

type statusJSON struct {
	NodeID       string           `json:"node_id"`
	LeaderID     string           `json:"leader_id"`
	Term         uint64           `json:"term"`
	CommitIndex  uint64           `json:"commit_index"`
	AppliedIndex uint64           `json:"applied_index"`
	Members      []memberJSON     `json:"members"`
	Maintenance  *maintenanceJSON `json:"maintenance,omitempty"`
	// StateHash digests the answering node's replicated state as of
	// StateIndex (compare nodes at equal indexes).
	StateHash  string `json:"state_hash"`
	StateIndex uint64 `json:"state_index"`
	// CommandVersion is the highest command version every voter applies.
	CommandVersion uint32 `json:"command_version"`
	// TestCommandIndex: test-only (GROUNDSKEEPER_TEST_COMMAND_VERSION), the
	// index of the first test-only command (version 4) (0: none).
	TestCommandIndex uint64 `json:"test_command_index,omitempty"`
	// TLS: the answering node runs mutual TLS; Insecure: it runs in
	// plaintext on a non-loopback address (--insecure).
	TLS      bool `json:"tls"`
	Insecure bool `json:"insecure,omitempty"`
	// Policy is the answering node's copy of the maintenance policy.
	Policy *policyJSON `json:"policy,omitempty"`
}

type maintenanceJSON struct {
	Master          string `json:"master"`
	MasterState     string `json:"master_state"`
	MasterError     string `json:"master_error,omitempty"`
	Servers         uint32 `json:"servers"`
	Volumes         uint32 `json:"volumes"`
	AdminLockHeld   bool   `json:"admin_lock_held"`
	MasterVacuumOff bool   `json:"master_vacuum_off"`
	// MasterVacuum is the master's own vacuum as we set it: off, on, not
	// set yet, or not ours to set (another process holds the admin lock).
	MasterVacuum     string `json:"master_vacuum,omitempty"`
	WorkersConnected uint32 `json:"workers_connected"`
	LastPoll         string `json:"last_poll,omitempty"`
	// AdminLock is SeaweedFS's admin lock: ours, held elsewhere or unknown;
	// AdminLockHolder is who the master says holds it, and AdminLockSince
	// since when (ours: acquired; elsewhere: first refused us; unknown:
	// first failed to ask).
	AdminLock       string `json:"admin_lock,omitempty"`
	AdminLockHolder string `json:"admin_lock_holder,omitempty"`
	AdminLockSince  string `json:"admin_lock_since,omitempty"`
	AdminLockError  string `json:"admin_lock_error,omitempty"`
	// ShellLockHolder is who holds SeaweedFS's shell lock (a `weed shell`
	// lock, or `weed admin` running a job), since ShellLockSince; maintenance
	// pauses meanwhile. Absent while nobody does.
	ShellLockHolder string `json:"shell_lock_holder,omitempty"`
	ShellLockSince  string `json:"shell_lock_since,omitempty"`
	// ShellLockOurs says this leader holds the shell lock itself (around
	// its attempts), since ShellLockOursSince.
	ShellLockOurs      bool   `json:"shell_lock_ours"`
	ShellLockOursSince string `json:"shell_lock_ours_since,omitempty"`
	// Paused says why detection or assignment is paused.
	Paused           string `json:"paused,omitempty"`
	DetectionPaused  bool   `json:"detection_paused"`
	AssignmentPaused bool   `json:"assignment_paused"`
	// Masters is every SeaweedFS master given to --master, in order: its
	// state (leader, follower, unreachable, unknown), the leader it names,
	// why it is unreachable, and when it was last asked.
	Masters []masterJSON `json:"masters"`
	// Volumes at reduced redundancy as the leader's last detection round
	// saw them (regular volumes short of copies, EC volumes short of
	// shards, and those no repair can restore), and since when the oldest
	// loss still unrepaired was seen.
	VolumesUnderreplicated uint32 `json:"volumes_underreplicated"`
	ECVolumesMissingShards uint32 `json:"ec_volumes_missing_shards"`
	VolumesUnrepairable    uint32 `json:"volumes_unrepairable"`
	OldestLoss             string `json:"oldest_loss,omitempty"`
	// Volumes with copies beyond their placement (regular volumes with
	// more copies than it asks for, EC volumes with a duplicated shard).
	VolumesOverreplicated    uint32 `json:"volumes_overreplicated"`
	ECVolumesDuplicateShards uint32 `json:"ec_volumes_duplicate_shards"`
}

type masterJSON struct {
	Address string `json:"address"`
	State   string `json:"state"`
	Leader  string `json:"leader,omitempty"`
	Error   string `json:"error,omitempty"`
	Seen    string `json:"seen,omitempty"`
}

type taskJSON struct {
	ID         uint64  `json:"id"`
	Type       string  `json:"type"`
	VolumeID   uint32  `json:"volume_id"`
	Collection string  `json:"collection"`
	State      string  `json:"state"`
	WorkerID   string  `json:"worker_id"`
	Attempt    uint32  `json:"attempt"`
	Progress   float64 `json:"progress"`
	Step       string  `json:"step"`
	Error      string  `json:"error"`
	Fence      uint64  `json:"fence"`
	Priority   int32   `json:"priority"`
	RetryCount uint32  `json:"retry_count"`
	Origin     string  `json:"origin"`
	Source     string  `json:"source,omitempty"`
	Target     string  `json:"target,omitempty"`
	CreatedAt  string  `json:"created_at"`
	UpdatedAt  string  `json:"updated_at"`
	Existing   *bool   `json:"existing,omitempty"`
	// CancelRequested: an operator cancelled the task and its attempt is
	// being stopped.
	CancelRequested bool `json:"cancel_requested,omitempty"`
}

type workerJSON struct {
	ID            string   `json:"id"`
	Capabilities  []string `json:"capabilities"`
	MaxConcurrent uint32   `json:"max_concurrent"`
	Connected     bool     `json:"connected"`
	Running       []uint64 `json:"running"`
	// LastHeardAt: when the leader last heard from the worker (RFC 3339);
	// empty when it is not connected.
	LastHeardAt string `json:"last_heard_at,omitempty"`
	lastHeard   int64
}

func stamp(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func toTaskJSON(t *fsmpb.Task) taskJSON {
	return taskJSON{
		ID: t.Id, Type: fsm.TypeName(t.Type), VolumeID: t.VolumeId, Collection: t.Collection,
		State: fsm.StateName(t.State), WorkerID: t.WorkerId, Attempt: t.Attempt, Progress: t.Progress,
		Step: t.Step, Error: t.LastError, Fence: t.Fence, Priority: t.Priority, RetryCount: t.RetryCount,
		Origin: t.Origin, Source: t.Source, Target: t.Target, CreatedAt: stamp(t.CreatedAt), UpdatedAt: stamp(t.UpdatedAt),
		CancelRequested: t.CancelRequested,
	}
}

func (o *ctlOpts) writeJSON(v any) error {
	enc := json.NewEncoder(o.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (o *ctlOpts) table() *tabwriter.Writer { return tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0) }

func printStatus(o *ctlOpts, st *pb.StatusResponse) error {
	if o.json {
		out := statusJSON{NodeID: st.NodeId, LeaderID: st.LeaderId, Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, Members: []memberJSON{},
			StateHash: st.StateHash, StateIndex: st.StateIndex, CommandVersion: st.CommandVersion, TestCommandIndex: st.TestCommandIndex,
			TLS: st.Tls, Insecure: st.Insecure}
		if st.Policy != nil {
			out.Policy = toPolicyJSON(st.Policy)
		}
		for _, m := range st.Members {
			out.Members = append(out.Members, memberJSON{ID: m.Id, RaftAddr: m.RaftAddr, GRPCAddr: m.GrpcAddr, State: m.State, Suffrage: m.Suffrage, AppliedIndex: m.AppliedIndex,
				MaxCommandVersion: m.MaxCommandVersion})
		}
		if m := st.Maintenance; m != nil {
			out.Maintenance = &maintenanceJSON{Master: m.Master, MasterState: m.MasterState, MasterError: m.MasterError, Servers: m.Servers, Volumes: m.Volumes,
				AdminLockHeld: m.AdminLockHeld, MasterVacuumOff: m.MasterVacuumOff, MasterVacuum: m.MasterVacuum, WorkersConnected: m.WorkersConnected, LastPoll: stamp(m.LastPoll),
				AdminLock: m.AdminLock, AdminLockHolder: m.AdminLockHolder, AdminLockSince: stamp(m.AdminLockSince), AdminLockError: m.AdminLockError,
				ShellLockHolder: m.ShellLockHolder, ShellLockSince: stamp(m.ShellLockSince),
				ShellLockOurs: m.ShellLockOurs, ShellLockOursSince: stamp(m.ShellLockOursSince),
				Paused: m.Paused, DetectionPaused: m.DetectionPaused, AssignmentPaused: m.AssignmentPaused, Masters: []masterJSON{},
				VolumesUnderreplicated: m.VolumesUnderreplicated, ECVolumesMissingShards: m.EcVolumesMissingShards, VolumesUnrepairable: m.VolumesUnrepairable,
				OldestLoss: stamp(m.OldestLoss), VolumesOverreplicated: m.VolumesOverreplicated, ECVolumesDuplicateShards: m.EcVolumesDuplicateShards}
			for _, sm := range m.Masters {
				out.Maintenance.Masters = append(out.Maintenance.Masters, masterJSON{Address: sm.Address, State: sm.State, Leader: sm.Leader, Error: sm.Error, Seen: stamp(sm.Seen)})
			}
		}
		return o.writeJSON(out)
	}
	leader := st.LeaderId
	if leader == "" {
		leader = "(none)"
	}
	fmt.Fprintf(o.out, "leader %s, term %d, commit index %d (answered by %s, applied %d), command version %d\n", leader, st.Term, st.CommitIndex, st.NodeId, st.AppliedIndex, st.CommandVersion)
	fmt.Fprintf(o.out, "transport: %s\n\n", securityText(st))
	w := o.table()
	fmt.Fprintln(w, "ID\tSTATE\tRAFT ADDR\tGRPC ADDR\tAPPLIED\tSUFFRAGE\tCMD VERSION")
	for _, m := range st.Members {
		v := "-"
		if m.MaxCommandVersion > 0 {
			v = fmt.Sprint(m.MaxCommandVersion)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.Id, m.State, m.RaftAddr, dash(m.GrpcAddr), m.AppliedIndex, m.Suffrage, v)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if p := st.Policy; p.GetPaused() {
		fmt.Fprintf(o.out, "\nmaintenance: %s\n", maintenanceText(p))
	}
	var off []string
	for _, t := range fsm.TaskTypes {
		if !fsm.TypeEnabled(st.Policy, t) {
			off = append(off, fsm.TypeName(t))
		}
	}
	if len(off) > 0 {
		fmt.Fprintf(o.out, "disabled by policy: %s\n", strings.Join(off, ", "))
	}
	if m := st.Maintenance; m != nil {
		fmt.Fprintln(o.out)
		switch m.MasterState {
		case "not configured":
			fmt.Fprintf(o.out, "SeaweedFS master: not configured (admins started without --master: nothing is detected or assigned)\n")
		case "unreachable":
			if len(m.Masters) > 1 {
				fmt.Fprintf(o.out, "SeaweedFS masters: NO MASTER LEADER REACHED (%s); detection paused, running tasks continue\n", m.MasterError)
			} else {
				fmt.Fprintf(o.out, "SeaweedFS master %s: UNREACHABLE (%s); detection paused, running tasks continue\n", m.Master, m.MasterError)
			}
		default:
			what := "master"
			if len(m.Masters) > 1 {
				what = "master leader"
			}
			fmt.Fprintf(o.out, "SeaweedFS %s %s: %s, %d volume servers, %d volumes\n", what, m.Master, m.MasterState, m.Servers, m.Volumes)
			fmt.Fprintf(o.out, "admin lock %s, master's own vacuum: %s\n", adminLockLine(m), masterVacuumText(m))
		}
		if len(m.Masters) > 1 {
			printMasters(o, m.Masters)
		}
		if m.ShellLockOurs {
			fmt.Fprintf(o.out, "shell lock held by this leader around its attempts (since %s)\n", stamp(m.ShellLockOursSince))
		}
		if m.ShellLockHolder != "" {
			since := ""
			if m.ShellLockSince != 0 {
				since = " (seen since " + stamp(m.ShellLockSince) + ")"
			}
			fmt.Fprintf(o.out, "shell lock HELD BY %s, another process%s\n", m.ShellLockHolder, since)
		}
		if m.Paused != "" {
			what := "detection and assignment"
			switch {
			case !m.DetectionPaused:
				what = "assignment"
			case !m.AssignmentPaused:
				what = "detection"
			}
			fmt.Fprintf(o.out, "MAINTENANCE PAUSED (%s): %s; running tasks continue\n", what, m.Paused)
		}
		if m.MasterState != "not configured" {
			fmt.Fprintf(o.out, "%s\n", redundancyLine(m))
			if m.VolumesOverreplicated+m.EcVolumesDuplicateShards > 0 {
				fmt.Fprintf(o.out, "extra copies: %d volumes with more copies than their placement, %d EC volumes with duplicate shards (removed once they last --repair-after and every required copy is verified)\n",
					m.VolumesOverreplicated, m.EcVolumesDuplicateShards)
			}
		}
		fmt.Fprintf(o.out, "workers connected: %d\n", m.WorkersConnected)
	}
	return nil
}

// redundancyLine counts the volumes at reduced redundancy.
func redundancyLine(m *pb.Maintenance) string {
	n := m.VolumesUnderreplicated + m.EcVolumesMissingShards
	if n == 0 {
		return "reduced redundancy: none"
	}
	s := fmt.Sprintf("REDUCED REDUNDANCY: %d volumes (%d short of copies, %d EC volumes short of shards)", n, m.VolumesUnderreplicated, m.EcVolumesMissingShards)
	if m.VolumesUnrepairable > 0 {
		s += fmt.Sprintf(", %d NOT REPAIRABLE (no copy, or fewer than 10 shards, left)", m.VolumesUnrepairable)
	}
	if m.OldestLoss != 0 {
		s += ", oldest seen " + stamp(m.OldestLoss)
	}
	return s
}

// masterVacuumText says how we set the master's own periodic vacuum.
func masterVacuumText(m *pb.Maintenance) string {
	switch m.MasterVacuum {
	case "":
		if m.MasterVacuumOff { // a leader of an older build
			return "off"
		}
		return "on"
	case scheduler.MasterVacuumOff:
		return "off (switched off by us while vacuum workers are connected)"
	case scheduler.MasterVacuumNotOurs:
		return "not ours to set (another process holds the admin lock)"
	}
	return m.MasterVacuum
}

// adminLockLine describes SeaweedFS's admin lock for the status text.
func adminLockLine(m *pb.Maintenance) string {
	since := ""
	if m.AdminLockSince != 0 {
		since = " since " + stamp(m.AdminLockSince)
	}
	switch m.AdminLock {
	case "ours":
		return "held by this leader" + since
	case "held elsewhere":
		if since != "" {
			since = " (seen" + since + ")"
		}
		return fmt.Sprintf("HELD BY %s, another process%s", dash(m.AdminLockHolder), since)
	case "ours, token lost":
		// The master processed a renewal whose answer was lost.
		return "ours, token lost; waiting for the lease to lapse" + since
	case "":
		return fmt.Sprintf("held: %v", m.AdminLockHeld)
	}
	s := "not known" + since
	if m.AdminLockError != "" {
		s += " (" + m.AdminLockError + ")"
	}
	return s
}

func printTasks(o *ctlOpts, tasks []*fsmpb.Task) error {
	if o.json {
		out := make([]taskJSON, 0, len(tasks))
		for _, t := range tasks {
			out = append(out, toTaskJSON(t))
		}
		return o.writeJSON(out)
	}
	return printRows(o, "no tasks", "ID\tTYPE\tVOLUME\tSTATE\tWORKER\tATTEMPT\tPROGRESS\tERROR", tasks, func(w io.Writer, t *fsmpb.Task) {
		fmt.Fprintf(w, "%d\t%s\t%d\t%s\t%s\t%d\t%.0f%%\t%s\n", t.Id, fsm.TypeName(t.Type), t.VolumeId, fsm.StateName(t.State), dash(t.WorkerId), t.Attempt, t.Progress, t.LastError)
	})
}

// printRows prints one table line a row under header, or none alone when
// there are no rows.
func printRows[T any](o *ctlOpts, none, header string, rows []T, line func(io.Writer, T)) error {
	if len(rows) == 0 {
		fmt.Fprintln(o.out, none)
		return nil
	}
	w := o.table()
	fmt.Fprintln(w, header)
	for _, r := range rows {
		line(w, r)
	}
	return w.Flush()
}

// printMasters lists a cluster's masters, one a line, under the master
// line of the status.
func printMasters(o *ctlOpts, masters []*pb.SeaweedMaster) {
	for _, sm := range masters {
		line := "  master " + sm.Address + ": " + sm.State
		switch sm.State {
		case seaweed.MasterUnreachable:
			line = "  master " + sm.Address + ": UNREACHABLE"
			if sm.Error != "" {
				line += " (" + sm.Error + ")"
			}
		case seaweed.MasterFollower:
			if sm.Leader != "" {
				line += ", names " + sm.Leader + " as leader"
			}
			if sm.Error != "" {
				line += " (" + sm.Error + ")"
			}
		}
		fmt.Fprintln(o.out, line)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printSubmitted(o *ctlOpts, r *pb.SubmitTaskResponse) error {
	if o.json {
		j := toTaskJSON(r.Task)
		j.Existing = &r.Existing
		return o.writeJSON(j)
	}
	t := r.Task
	if r.Existing {
		fmt.Fprintf(o.out, "volume %d already has an active %s task: returning task %d (%s) instead of creating another\n", t.VolumeId, fsm.TypeName(t.Type), t.Id, fsm.StateName(t.State))
		return nil
	}
	fmt.Fprintf(o.out, "submitted task %d: %s of volume %d (%s)\n", t.Id, fsm.TypeName(t.Type), t.VolumeId, fsm.StateName(t.State))
	return nil
}

func printTaskDetail(o *ctlOpts, t *fsmpb.Task) error {
	if o.json {
		return o.writeJSON(toTaskJSON(t))
	}
	j := toTaskJSON(t)
	w := o.table()
	for _, kv := range [][2]string{
		{"id", fmt.Sprint(j.ID)}, {"type", j.Type}, {"volume", fmt.Sprint(j.VolumeID)}, {"collection", j.Collection},
		{"state", j.State}, {"worker", dash(j.WorkerID)}, {"attempt", fmt.Sprint(j.Attempt)}, {"fence", fmt.Sprint(j.Fence)},
		{"progress", fmt.Sprintf("%.0f%% %s", j.Progress, j.Step)}, {"retries", fmt.Sprint(j.RetryCount)}, {"priority", fmt.Sprint(j.Priority)},
		{"origin", j.Origin}, {"source", j.Source}, {"target", j.Target}, {"created", j.CreatedAt}, {"updated", j.UpdatedAt}, {"error", j.Error},
	} {
		fmt.Fprintf(w, "%s\t%s\n", kv[0], kv[1])
	}
	if t.CancelRequested && !fsm.Terminal(t.State) {
		fmt.Fprintf(w, "cancel\trequested (%s): waiting for the worker to stop and roll back\n", t.CancelReason)
	}
	return w.Flush()
}

func printWorkers(o *ctlOpts, ws []*pb.WorkerStatus) error {
	out := make([]workerJSON, 0, len(ws))
	for _, w := range ws {
		j := workerJSON{ID: w.Worker.Id, MaxConcurrent: w.Worker.MaxConcurrent, Connected: w.Connected, Running: w.Running, Capabilities: []string{},
			LastHeardAt: stamp(w.LastHeardAt), lastHeard: w.LastHeardAt}
		if j.Running == nil {
			j.Running = []uint64{}
		}
		for _, c := range w.Worker.Capabilities {
			j.Capabilities = append(j.Capabilities, fsm.TypeName(c))
		}
		out = append(out, j)
	}
	if o.json {
		return o.writeJSON(out)
	}
	now := time.Now()
	return printRows(o, "no workers", "ID\tCONNECTED\tLAST HEARD\tCAPABILITIES\tSLOTS\tRUNNING", out, func(w io.Writer, j workerJSON) {
		fmt.Fprintf(w, "%s\t%v\t%s\t%v\t%d\t%v\n", j.ID, j.Connected, heardAgo(j.lastHeard, now), j.Capabilities, j.MaxConcurrent, j.Running)
	})
}

// heardAgo says how long before now the leader last heard from a worker
// ("-" when it is not connected), by this machine's clock.
func heardAgo(ns int64, now time.Time) string {
	if ns == 0 {
		return "-"
	}
	return max(0, now.Sub(time.Unix(0, ns))).Round(100*time.Millisecond).String() + " ago"
}

func printDone(o *ctlOpts, msg string) error {
	if o.json {
		return o.writeJSON(map[string]any{"ok": true, "message": msg})
	}
	fmt.Fprintln(o.out, msg)
	return nil
}

type peersJSON struct {
	LeaderID string       `json:"leader_id"`
	Term     uint64       `json:"term"`
	Members  []memberJSON `json:"members"`
}

func printPeers(o *ctlOpts, st *pb.StatusResponse) error {
	if o.json {
		out := peersJSON{LeaderID: st.LeaderId, Term: st.Term, Members: []memberJSON{}}
		for _, m := range st.Members {
			out.Members = append(out.Members, memberJSON{ID: m.Id, RaftAddr: m.RaftAddr, GRPCAddr: m.GrpcAddr, State: m.State, Suffrage: m.Suffrage, AppliedIndex: m.AppliedIndex})
		}
		return o.writeJSON(out)
	}
	w := o.table()
	fmt.Fprintln(w, "ID\tSTATE\tRAFT ADDR\tGRPC ADDR\tSUFFRAGE")
	for _, m := range st.Members {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.Id, m.State, m.RaftAddr, m.GrpcAddr, m.Suffrage)
	}
	return w.Flush()
}

// securityText says how the answering node's ports are protected.
func securityText(st *pb.StatusResponse) string {
	switch {
	case st.Tls:
		return "mutual TLS"
	case st.Insecure:
		return "INSECURE: plaintext on a non-loopback address (--insecure); anyone who reaches the ports controls the cluster"
	}
	return "plaintext on loopback only"
}
