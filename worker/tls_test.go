package worker

import (
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestNewRefusesAnotherIdentity: a worker runs only with a worker
// certificate named by its own id.
func TestNewRefusesAnotherIdentity(t *testing.T) {
	load := newTestCA(t)
	cfg := func(src *certs.Source) Config {
		return Config{ID: "w1", Admins: []string{"127.0.0.1:1"}, DataDir: t.TempDir(), MaxConcurrent: 1, TLS: src,
			Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM},
			Executors:    map[fsmpb.TaskType]Executor{fsmpb.TaskType_TASK_TYPE_VACUUM: statsExecutor{}}}
	}
	for name, src := range map[string]*certs.Source{"another worker": load(certs.RoleWorker, "w2"), "an operator": load(certs.RoleOperator, "w1")} {
		if _, err := New(cfg(src)); err == nil || !strings.Contains(err.Error(), "--role worker --name w1") {
			t.Errorf("%s's certificate: New = %v, want a refusal", name, err)
		}
	}
}

// newTestCA makes a CA in a temporary directory and returns what issues
// and loads a certificate of it for a role and name.
func newTestCA(t *testing.T) func(role certs.Role, name string) *certs.Source {
	t.Helper()
	dir := t.TempDir()
	if _, err := certs.NewCA(dir); err != nil {
		t.Fatal(err)
	}
	return func(role certs.Role, name string) *certs.Source {
		t.Helper()
		if _, err := certs.Issue(dir, role, name, nil, 0); err != nil {
			t.Fatal(err)
		}
		src, err := certs.Load(certs.IssuedFiles(dir, name), certs.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
}
