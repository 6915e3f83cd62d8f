package rpc

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestRestampForwarded: a forwarded command stamped before the leader's
// clock at arrival takes the leader's time, and nothing else in it
// changes; one stamped later keeps its bytes.
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
	var batch []forwarded
	for _, raw := range [][]byte{early, late} {
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
	got, err := fsm.Decode(out[0])
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fsm.Decode(early)
	want.Now = 200
	if !proto.Equal(got, want) {
		t.Fatalf("restamped %v, want %v", got, want)
	}
	if string(out[1]) != string(late) {
		t.Fatal("a command stamped after the leader's clock was changed")
	}
	// A command that does not decode is refused before any restamp.
	if _, _, _, err := validateBatch(&pb.ApplyBatchRequest{Commands: [][]byte{[]byte("not a command")}}); err == nil {
		t.Fatal("a forwarded command that does not decode was accepted")
	}
}
