package rpc

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
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
	out, err := restamp([][]byte{early, late}, 200)
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
	if _, err := restamp([][]byte{[]byte("not a command")}, 200); err == nil {
		t.Fatal("a command that does not decode was restamped")
	}
}
