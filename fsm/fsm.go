package fsm

import (
	"fmt"
	"io"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// FSM applies committed log entries to a State, halts for good at a
// command this build does not know, snapshots and restores the State, and
// guards it for concurrent readers. It knows nothing of raft: cluster adapts
// it to raft.FSM.
type FSM struct {
	mu    sync.RWMutex
	state *State
	// onApply, if set, is called after each batch with the applied index.
	onApply func(index uint64)
	// onRestore, if set, is called after the state was replaced by a snapshot.
	onRestore func()
	// maxVersion is the highest command version this build applies.
	maxVersion uint32
	// halted is set, once, when a committed entry holds a command this
	// build does not know, or a snapshot reflects one: nothing at or past
	// it is applied (or restored) any more. An *UnknownCommandError or a
	// *SnapshotTooNewError.
	halted error
	// onHalt, if set, is told (once) why the FSM halted.
	onHalt func(error)
}

// UnknownCommandError says a committed entry holds a command this build
// does not know. The FSM stops before it: applying it wrongly, or skipping
// it, would make this node's state differ from its upgraded peers'.
type UnknownCommandError struct {
	Index   uint64
	Version uint32 // the entry's command version
	Known   uint32 // the highest version this build applies
	Body    bool   // false: the body itself is not one this build knows
	// Fields: the body is known but carries fields this build does not
	// know (a newer build's addition), which it would silently drop.
	Fields bool
}

func (e *UnknownCommandError) Error() string {
	what := fmt.Sprintf("a command of version %d", e.Version)
	switch {
	case e.Fields:
		what = fmt.Sprintf("a command (version %d) with fields", e.Version)
	case !e.Body:
		what = fmt.Sprintf("a command (version %d) whose kind", e.Version)
	}
	return fmt.Sprintf("raft entry %d holds %s this build does not know (it applies command versions up to %d): stopped before applying it; upgrade this node's binary and start it again (the entry stays in the log and is applied then)", e.Index, what, e.Known)
}

// SnapshotTooNewError says a snapshot reflects commands of a version this
// build does not apply: it was taken by a newer build, and this one may not
// read all of it (nor go on from it, since the log before it is gone).
type SnapshotTooNewError struct {
	Index   uint64 // the snapshot's applied index (0: not recorded)
	Version uint32 // the highest command version the snapshot reflects
	Known   uint32
}

func (e *SnapshotTooNewError) Error() string {
	at := ""
	if e.Index != 0 {
		at = fmt.Sprintf(" (at raft index %d)", e.Index)
	}
	return fmt.Sprintf("a snapshot%s reflects commands of version %d, which this build does not know (it applies command versions up to %d): refused to restore it; upgrade this node's binary and start it again", at, e.Version, e.Known)
}

// HaltedError is the response to an entry committed after the FSM halted:
// this node did not apply it, the nodes that know its command did, so its
// outcome is unknown here.
type HaltedError struct {
	Index uint64
	Cause error
}

func (e *HaltedError) Error() string {
	return fmt.Sprintf("raft entry %d was committed but this node stopped applying before it, so its outcome is unknown here: %v", e.Index, e.Cause)
}

func (e *HaltedError) Unwrap() error { return e.Cause }

// Entry is one committed log entry, as the FSM sees it.
type Entry struct {
	Index uint64
	// Command is false for an entry of the log's own (a configuration
	// change, a no-op, a barrier): it only advances the applied index.
	Command bool
	// Data is the encoded command (see Encode).
	Data []byte
}

// New returns an FSM over an empty state that applies the command versions
// this build knows (up to CurrentVersion).
func New() *FSM { return NewWithVersion(CurrentVersion) }

// NewWithVersion returns an FSM over an empty state that applies command
// versions up to maxVersion (0: CurrentVersion). Tests give 1 to play a
// build that predates the attempt history, TestCommandVersion to play one
// that knows one more version.
func NewWithVersion(maxVersion uint32) *FSM {
	if maxVersion == 0 {
		maxVersion = CurrentVersion
	}
	st := NewState()
	st.maxVersion = maxVersion
	return &FSM{state: st, maxVersion: maxVersion}
}

// MaxCommandVersion is the highest command version this FSM applies.
func (f *FSM) MaxCommandVersion() uint32 { return f.maxVersion }

// OnHalt registers fn, told once (from raft's apply goroutine, outside the
// lock) that the FSM stopped at a command this build does not know. fn
// must not block. Call it before raft starts.
func (f *FSM) OnHalt(fn func(error)) { f.onHalt = fn }

// Halted returns why the FSM stopped applying, or nil.
func (f *FSM) Halted() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.halted == nil {
		return nil
	}
	return f.halted
}

// unknown reports whether cmd is a command this build does not know: a
// version outside the ones it applies, a body it cannot read, or fields
// anywhere in it that it does not know. (A known body in a version too old
// for it is merely invalid: Apply refuses it.)
func (f *FSM) unknown(index uint64, cmd *fsmpb.Command) *UnknownCommandError {
	if cmd.Version > f.maxVersion || cmd.Version < CommandVersion {
		return &UnknownCommandError{Index: index, Version: cmd.Version, Known: f.maxVersion, Body: true}
	}
	if cmd.Body == nil || RequiredVersion(cmd) > f.maxVersion {
		return &UnknownCommandError{Index: index, Version: cmd.Version, Known: f.maxVersion}
	}
	if hasUnknownFields(cmd.ProtoReflect()) {
		return &UnknownCommandError{Index: index, Version: cmd.Version, Known: f.maxVersion, Body: true, Fields: true}
	}
	return nil
}

// hasUnknownFields reports whether m, or any message inside it, holds
// fields its descriptor does not know (kept by the decoder as unknown).
func hasUnknownFields(m protoreflect.Message) bool {
	if len(m.GetUnknown()) > 0 {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					found = hasUnknownFields(mv.Message())
					return !found
				})
			}
		case fd.Message() == nil:
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && !found; i++ {
				found = hasUnknownFields(l.Get(i).Message())
			}
		default:
			found = hasUnknownFields(v.Message())
		}
		return !found
	})
	return found
}

// OnApply registers a callback run (outside the lock) after commands are applied.
// Call it before raft starts.
func (f *FSM) OnApply(fn func(index uint64)) { f.onApply = fn }

// OnRestore registers a callback run (outside the lock) each time a snapshot
// replaces the state: at start-up, when a follower installs the leader's
// snapshot, and when an operator restores one. Call it before raft starts.
func (f *FSM) OnRestore(fn func()) { f.onRestore = fn }

// Apply applies a single committed log entry.
func (f *FSM) Apply(e Entry) interface{} {
	return f.ApplyBatch([]Entry{e})[0]
}

// ApplyBatch applies committed entries under one lock acquisition. Each result
// is a *fsmpb.ApplyResult (nil for an entry that is not a command), or a *HaltedError
// once the FSM halted.
func (f *FSM) ApplyBatch(entries []Entry) []interface{} {
	out := make([]interface{}, len(entries))
	cmds := make([]*fsmpb.Command, len(entries))
	for i, e := range entries {
		if !e.Command {
			continue
		}
		cmd, err := Decode(e.Data)
		if err != nil {
			out[i] = &fsmpb.ApplyResult{Index: e.Index, ErrorCode: fsmpb.ErrorCode_ERROR_CODE_INVALID, Error: err.Error()}
			continue
		}
		cmds[i] = cmd
	}
	var last uint64
	var halt error
	f.mu.Lock()
	for i, e := range entries {
		if f.halted == nil && cmds[i] != nil {
			if u := f.unknown(e.Index, cmds[i]); u != nil {
				f.halted, halt = u, u
			}
		}
		if f.halted != nil {
			// Not applied here: the log keeps the entry, and the upgraded
			// binary applies it (and everything after it) on restart. The
			// other nodes may well have applied it: its outcome is unknown
			// here, which is not a refusal.
			out[i] = &HaltedError{Index: e.Index, Cause: f.halted}
			continue
		}
		last = e.Index
		if cmds[i] == nil {
			if e.Index > f.state.appliedIndex {
				f.state.appliedIndex = e.Index
			}
			continue
		}
		out[i] = f.state.Apply(e.Index, cmds[i])
	}
	f.mu.Unlock()
	if f.onApply != nil && last > 0 {
		f.onApply(last)
	}
	if halt != nil && f.onHalt != nil {
		f.onHalt(halt)
	}
	return out
}

// Read runs fn with the state under a read lock. fn must not keep or modify
// anything it is given beyond the immutable values it returns.
func (f *FSM) Read(fn func(s *State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

// Hash returns the state digest.
func (f *FSM) Hash() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Hash()
}

// HashAt returns the state digest and the raft index it reflects, read
// together: the last entry handed to the FSM (0 right after an operator's
// restore, until the next entry). Raft's no-op and barrier entries are not
// handed over; cluster.Node.StateIndex extends the index over them.
func (f *FSM) HashAt() (index uint64, hash string) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.appliedIndex, f.state.Hash()
}

// Snapshot captures the state quickly; the encoding happens in WriteTo.
func (f *FSM) Snapshot() (*Snapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.halted != nil {
		// A snapshot now would claim entries this node never applied, and
		// let raft drop them from the log before the upgraded binary runs.
		return nil, fmt.Errorf("no snapshot: %w", f.halted)
	}
	return &Snapshot{snap: f.state.Snapshot()}, nil
}

// Restore replaces the state with one read from a snapshot (as WriteTo
// wrote it).
func (f *FSM) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	st, snap, err := DecodeSnapshot(b)
	if err != nil {
		return err
	}
	st.maxVersion = f.maxVersion
	f.mu.Lock()
	if f.halted != nil {
		f.mu.Unlock()
		// A state from past the entry this build does not know was made by
		// a newer build: this one may not read all of it.
		return fmt.Errorf("no restore: %w", f.halted)
	}
	if v := st.WrittenVersion(); v > f.maxVersion {
		// Raft cannot take a refusal: a follower's install only logs it and
		// the leader sends the snapshot again, and at start-up raft tries
		// older snapshots the log no longer continues. Stop for good, so
		// the process exits and the snapshot waits for the upgrade.
		halt := &SnapshotTooNewError{Index: snap.AppliedIndex, Version: v, Known: f.maxVersion}
		f.halted = halt
		f.mu.Unlock()
		if f.onHalt != nil {
			f.onHalt(halt)
		}
		return halt
	}
	f.state = st
	f.mu.Unlock()
	if f.onApply != nil {
		f.onApply(snap.AppliedIndex)
	}
	if f.onRestore != nil {
		f.onRestore()
	}
	return nil
}

// Snapshot is the state at one point, captured by FSM.Snapshot; entries
// applied after it do not change it.
type Snapshot struct{ snap *fsmpb.StateSnapshot }

// WriteTo encodes the snapshot into w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	b, err := MarshalSnapshot(s.snap)
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

// DecodeSnapshot decodes and checks the bytes of a persisted snapshot,
// returning the state they hold. It changes nothing: callers use it to
// vet a snapshot before handing it to raft (which cannot take a refusal).
func DecodeSnapshot(b []byte) (*State, *fsmpb.StateSnapshot, error) {
	var snap fsmpb.StateSnapshot
	if err := proto.Unmarshal(b, &snap); err != nil {
		return nil, nil, fmt.Errorf("decode snapshot: %w", err)
	}
	st, err := FromSnapshot(&snap)
	if err != nil {
		return nil, nil, fmt.Errorf("restore snapshot: %w", err)
	}
	return st, &snap, nil
}
