package fsm

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// CommandVersion is the base envelope version: every build writes and
// applies it, and every command but the test-only one is written with it.
const CommandVersion = 1

// TestCommandVersion is the version of the test-only TestCommand. A build
// applies it only when told to (GROUNDSKEEPER_TEST_COMMAND_VERSION=2), which
// is how tests play "a build that knows one more command version".
const TestCommandVersion = 2

// RequiredVersion is the lowest command version that can carry cmd's body:
// the version Encode stamps and the leader must know every voter applies.
func RequiredVersion(cmd *pb.Command) uint32 {
	if _, ok := cmd.Body.(*pb.Command_TestCommand); ok {
		return TestCommandVersion
	}
	return CommandVersion
}

// AgreedVersion is the highest command version every one of ids (the
// servers of the raft configuration, voters and non-voters alike: each
// applies every entry) has advertised (advertised maps an admin id to its
// advertised version): the newest the leader may write. A server that
// advertised nothing yet counts as the base version, which every build
// applies.
func AgreedVersion(ids []string, advertised map[string]uint32) uint32 {
	if len(ids) == 0 {
		return CommandVersion
	}
	agreed := uint32(0)
	for i, id := range ids {
		a := max(advertised[id], CommandVersion)
		if i == 0 || a < agreed {
			agreed = a
		}
	}
	return agreed
}

// Encode stamps the envelope version (RequiredVersion) and the proposer's
// time and marshals cmd.
func Encode(now int64, cmd *pb.Command) ([]byte, error) {
	cmd.Version = RequiredVersion(cmd)
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
