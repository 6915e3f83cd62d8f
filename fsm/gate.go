package fsm

import "google.golang.org/protobuf/encoding/protowire"

// The FSM's side of cluster.Versioned: what the leader's gate needs to
// know about command versions, read from the replicated state.

// GatedVersion returns the version an encoded command is written in and
// whether it is above the base version (so the leader writes it only once
// every member applies it). It reads the envelope's version field only.
func (f *FSM) GatedVersion(b []byte) (uint32, bool) {
	v := peekVersion(b)
	return v, v > CommandVersion
}

// peekVersion returns the Command envelope's version field (0: absent or
// unreadable) without decoding the body.
func peekVersion(b []byte) uint32 {
	var v uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			x, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0
			}
			v, b = x, b[m:] // the last occurrence wins, as in proto.Unmarshal
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return 0
		}
		b = b[m:]
	}
	return uint32(v)
}

// AgreedVersion is the highest command version every one of ids (the
// servers of the raft configuration, voters or not) advertised.
func (f *FSM) AgreedVersion(ids []string) uint32 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return AgreedVersion(ids, f.state.versions)
}

// EncodingVersion is the command version a leader may write in: what
// every one of ids advertised, but never below what the state has written
// already (a member that has not advertised yet, one being added, counts
// as the base version, and a command written in version 1 then drops the
// attempt history a later version-2 command overwrites; writing the
// written version is safe: cluster checkJoin admits no server that does
// not apply it), nor above what this build applies.
func (f *FSM) EncodingVersion(ids []string) uint32 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return min(max(AgreedVersion(ids, f.state.versions), f.state.WrittenVersion()), f.maxVersion)
}

// WrittenVersion is the highest command version among the entries the
// state reflects, and whether it is above the base version.
func (f *FSM) WrittenVersion() (uint32, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v := f.state.WrittenVersion()
	return v, v > CommandVersion
}

// ForgetAdmin returns the encoded command that drops what admin id
// published (ok false: it published nothing, so there is nothing to do).
func (f *FSM) ForgetAdmin(id string) ([]byte, bool, error) {
	var published bool
	f.Read(func(s *State) {
		_, published = s.admins[id]
		if !published {
			_, published = s.versions[id]
		}
	})
	if !published {
		return nil, false, nil
	}
	b, err := Encode(0, ForgetAdminCmd(id))
	return b, err == nil, err
}
