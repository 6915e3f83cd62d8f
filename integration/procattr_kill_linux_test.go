package integration

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// TestKilledTestBinaryLeavesNoChildren re-runs this test binary as a
// stand-in harness that starts a child the way the tests start admins,
// workers and weed servers, kills the stand-in with SIGKILL (as a timeout
// or an impatient developer does), and requires the child to die with it.
func TestKilledTestBinaryLeavesNoChildren(t *testing.T) {
	if os.Getenv(spawnerEnv) == "1" {
		child := exec.Command("sleep", "300")
		child.SysProcAttr = childAttr()
		if err := child.Start(); err != nil {
			t.Fatalf("start the child: %v", err)
		}
		os.Stdout.WriteString("child " + strconv.Itoa(child.Process.Pid) + "\n")
		time.Sleep(time.Hour) // killed by the outer test long before
		return
	}
	spawner := exec.Command(os.Args[0], "-test.run", "^TestKilledTestBinaryLeavesNoChildren$", "-test.v")
	spawner.Env = append(os.Environ(), spawnerEnv+"=1")
	out, err := spawner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := spawner.Start(); err != nil {
		t.Fatalf("start the stand-in harness: %v", err)
	}
	pid := 0
	sc := bufio.NewScanner(out)
	for pid == 0 && sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "child "); ok {
			pid, _ = strconv.Atoi(rest)
		}
	}
	if pid == 0 {
		_ = spawner.Process.Kill()
		t.Fatalf("the stand-in harness never said which child it started")
	}
	if !alive(pid) {
		t.Fatalf("child %d is not running before the kill", pid)
	}
	_ = spawner.Process.Signal(syscall.SIGKILL)
	_ = spawner.Wait()
	testutil.EventuallyTrue(t, 10*time.Second, "the child to die with its harness", func() bool { return !alive(pid) })
}

// alive reports whether pid exists and is not a zombie (a container's
// init may not reap the orphans it inherits).
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
