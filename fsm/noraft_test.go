package fsm

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoRaft: fsm, and the scheduler and worker that read its state,
// link no hashicorp/raft, their tests included; raft stays in cluster,
// which adapts the FSM to it.
func TestLinksNoRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	cmd := exec.Command(goBin, "list", "-deps", "-test", "./fsm", "./scheduler", "./worker")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/hashicorp/raft") {
			t.Errorf("fsm, scheduler or worker links %s; only cluster may", pkg)
		}
	}
}
