package fsm

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// CommandVersion is the envelope version this build writes and understands.
const CommandVersion = 1

// Encode stamps the envelope version and the proposer's time and marshals cmd.
func Encode(now int64, cmd *pb.Command) ([]byte, error) {
	cmd.Version = CommandVersion
	cmd.Now = now
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	return b, nil
}

// Decode unmarshals a command from a log entry.
func Decode(b []byte) (*pb.Command, error) {
	var cmd pb.Command
	if err := proto.Unmarshal(b, &cmd); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	return &cmd, nil
}
