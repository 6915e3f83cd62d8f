package admin

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
)

func TestAdminReady(t *testing.T) {
	for _, c := range []struct {
		st   cluster.Status
		want bool
	}{
		{cluster.Status{State: "leader", LeaderID: "a"}, true},
		{cluster.Status{State: "follower", LeaderID: "a"}, true},
		{cluster.Status{State: "follower"}, false},
		{cluster.Status{State: "candidate", LeaderID: "a"}, false},
		{cluster.Status{State: "shutdown"}, false},
	} {
		if ok, why := adminReady(c.st); ok != c.want || (!ok && why == "") {
			t.Errorf("adminReady(%+v) = %v %q; want %v with a reason when not ready", c.st, ok, why, c.want)
		}
	}
}
