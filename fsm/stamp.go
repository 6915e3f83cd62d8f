package fsm

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// Stamp returns the encoded command b stamped no earlier than floor (unix
// nanoseconds), and its stamp. The leader raises each command it proposes
// to the newest stamp it proposed before, in log order, so the times Apply
// records (a task created, a task finished) never go back along the log:
// a command stamped by one proposer and appended after another's later
// stamp would otherwise record, say, a task created before the previous
// task of its volume finished. A command already at or past floor is
// returned as it is (its stamp read without decoding the body); only a
// raised one is re-encoded.
func (f *FSM) Stamp(b []byte, floor int64) ([]byte, int64, error) {
	if now, ok := peekNow(b); ok && now >= floor {
		return b, now, nil
	}
	var cmd fsmpb.Command
	if err := proto.Unmarshal(b, &cmd); err != nil {
		return nil, 0, fmt.Errorf("stamp a command: %w", err)
	}
	if cmd.Now >= floor {
		return b, cmd.Now, nil
	}
	cmd.Now = floor
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(&cmd)
	if err != nil {
		return nil, 0, fmt.Errorf("stamp a command: %w", err)
	}
	return out, floor, nil
}

// peekNow returns the Command envelope's now field (the last occurrence,
// as proto.Unmarshal takes it) without decoding the body; ok is false for
// bytes it cannot read.
func peekNow(b []byte) (int64, bool) {
	var now uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
		if num == 2 && typ == protowire.VarintType {
			x, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0, false
			}
			now, b = x, b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return 0, false
		}
		b = b[m:]
	}
	return int64(now), true
}
