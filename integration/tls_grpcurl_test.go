package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// TestTLSGrpcurlReader: a stock grpcurl holding a reader certificate made
// by `groundskeeper tls` lists the admins' services and describes the
// capacity oracle through server reflection over mutual TLS, and calls
// the oracle (stale and linearizable, via every admin), which answers the
// simulated master's figures; the same reader is refused a submission
// (PermissionDenied naming the operator role); grpcurl with the CA but no
// certificate, and in plaintext, gets nothing.
func TestTLSGrpcurlReader(t *testing.T) {
	gcurl := grpcurlBinary(t)
	cfg := sim.DefaultConfig()
	cfg.Servers = 3
	master, err := sim.New(cfg)
	if err != nil {
		t.Fatalf("start the simulated SeaweedFS: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	const size, deleted = 30 << 20, 3 << 20
	ids, err := master.AddVolumesFunc(2, func(int, *sim.VolumeSpec) {}, sim.VolumeSpec{Collection: "tlscurl", Size: size, DeletedBytes: deleted})
	if err != nil {
		t.Fatal(err)
	}
	vid := ids[len(ids)-1]
	c := startTLSAdmins(t, "--master", master.MasterServerAddress().String(), "--detect-interval", "1h")

	rita := certs.IssuedFiles(c.pki, "rita")
	asReader := []string{"-cacert", rita.CA, "-cert", rita.Cert, "-key", rita.Key, "-max-time", "20"}
	curl := func(flags []string, args ...string) (string, error) {
		return grpcurl(gcurl, append(append([]string{}, flags...), args...)...)
	}
	for _, a := range c.addrs() {
		out, err := curl(asReader, a, "list")
		if err != nil || !strings.Contains(out, "groundskeeper.v1.CapacityOracle\n") {
			t.Fatalf("grpcurl list as a reader via %s does not show groundskeeper.v1.CapacityOracle (%v):\n%s", a, err, out)
		}
	}
	if out, err := curl(asReader, c.addrs()[1], "describe", "groundskeeper.v1.CapacityOracle"); err != nil || !strings.Contains(out, "rpc GetVolumeCapacity") {
		t.Fatalf("grpcurl describe as a reader does not show GetVolumeCapacity (%v):\n%s", err, out)
	}

	// Each admin answers once its copy of the master's topology arrived.
	eventually(t, fmt.Sprintf("grpcurl's oracle calls to report volume %d's size via every admin", vid), func() (bool, string) {
		for _, a := range c.addrs() {
			for _, cons := range []string{"CONSISTENCY_STALE", "CONSISTENCY_LINEARIZABLE"} {
				req := fmt.Sprintf(`{"volume_ids":[%d],"consistency":%q}`, vid, cons)
				out, err := curl(asReader, "-d", req, a, "groundskeeper.v1.CapacityOracle/GetVolumeCapacity")
				if err != nil {
					return false, err.Error()
				}
				var resp pb.GetVolumeCapacityResponse
				if err := protojson.Unmarshal([]byte(out), &resp); err != nil {
					t.Fatalf("grpcurl via %s printed what is not a GetVolumeCapacityResponse (%v): %s", a, err, out)
				}
				if len(resp.Volumes) != 1 {
					return false, fmt.Sprintf("%s %s: %d volumes in the answer: %s", a, cons, len(resp.Volumes), out)
				}
				v := resp.Volumes[0]
				if v.VolumeId != vid || v.Collection != "tlscurl" || v.MasterSize != size || v.DeletedBytes != deleted {
					return false, fmt.Sprintf("%s %s: %s; want volume %d of tlscurl, %d bytes, %d deleted", a, cons, out, vid, size, deleted)
				}
			}
		}
		return true, ""
	})

	// Reflection is no way around the roles.
	submit := `{"type":"TASK_TYPE_VACUUM","volume_id":7}`
	if out, err := curl(asReader, "-d", submit, c.addrs()[0], "groundskeeper.v1.Admin/SubmitTask"); err == nil ||
		!strings.Contains(err.Error(), "PermissionDenied") || !strings.Contains(err.Error(), "needs role operator") {
		t.Errorf("grpcurl SubmitTask as a reader: %v\n%s; want PermissionDenied naming the operator role", err, out)
	}
	// No certificate (the CA only), and plaintext: not even a list.
	if out, err := curl([]string{"-cacert", filepath.Join(c.pki, certs.CAFile), "-max-time", "10"}, c.addrs()[0], "list"); err == nil {
		t.Errorf("grpcurl without a client certificate listed the services:\n%s", out)
	}
	if out, err := curl([]string{"-plaintext", "-max-time", "10"}, c.addrs()[0], "list"); err == nil {
		t.Errorf("grpcurl in plaintext listed the services:\n%s", out)
	}
}
