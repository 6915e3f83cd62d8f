package admin_test

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/admin"
	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
)

// TestEveryMethodHasARole: every method of every service an admin serves
// is in rpc.MethodRoles (a new method must say who may call it; one left
// out would be refused to everyone), and the table names nothing the
// server does not serve.
func TestEveryMethodHasARole(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(1))
	s.StartAdmins(admintest.SchedConfig())
	served := map[string]bool{}
	for svc, methods := range admin.Services(s.Node(0)) {
		for _, m := range methods {
			full := "/" + svc + "/" + m
			served[full] = true
			if _, ok := rpc.MethodRoles[full]; !ok {
				t.Errorf("%s is served but has no role in rpc.MethodRoles", full)
			}
		}
	}
	if len(served) < 15 {
		t.Fatalf("only %d methods served: the listing is broken", len(served))
	}
	for full := range rpc.MethodRoles {
		if !served[full] {
			t.Errorf("rpc.MethodRoles names %s, which no service serves", full)
		}
	}
}
