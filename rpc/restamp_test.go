package rpc

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestRestampForwarded: a forwarded command takes the leader's clock at
// arrival, whether the follower's stamp is behind it or ahead (a follower
// whose clock runs ahead must not drag the leader's stamps along), and
// nothing else in it changes; one stamped at that very time keeps its
// bytes.
func TestRestampForwarded(t *testing.T) {
	cmd := &fsmpb.Command{Body: &fsmpb.Command_SubmitTask{SubmitTask: &fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 209}}}
	early, err := fsm.Encode(100, proto.Clone(cmd).(*fsmpb.Command))
	if err != nil {
		t.Fatal(err)
	}
	late, err := fsm.Encode(300, proto.Clone(cmd).(*fsmpb.Command))
	if err != nil {
		t.Fatal(err)
	}
	same, err := fsm.Encode(200, proto.Clone(cmd).(*fsmpb.Command))
	if err != nil {
		t.Fatal(err)
	}
	var batch []forwarded
	for _, raw := range [][]byte{early, late, same} {
		cmd, err := fsm.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, forwarded{raw: raw, cmd: cmd})
	}
	out, err := restamp(batch, 200)
	if err != nil {
		t.Fatal(err)
	}
	for i, raw := range [][]byte{early, late} {
		got, err := fsm.Decode(out[i])
		if err != nil {
			t.Fatal(err)
		}
		want, _ := fsm.Decode(raw)
		want.Now = 200
		if !proto.Equal(got, want) {
			t.Fatalf("restamped %v, want %v", got, want)
		}
	}
	if string(out[2]) != string(same) {
		t.Fatal("a command stamped at the leader's time was re-encoded")
	}
	// A command that does not decode is refused before any restamp.
	if _, _, _, err := validateBatch(&pb.ApplyBatchRequest{Commands: [][]byte{[]byte("not a command")}}); err == nil {
		t.Fatal("a forwarded command that does not decode was accepted")
	}
}
