package admin_test

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// system is the harness with this package's own helpers as methods.
type system struct{ *admintest.System }

// newSystem starts the simulated SeaweedFS; seed volumes, then StartAdmins.
func newSystem(t testing.TB, simCfg sim.Config) *system {
	return &system{admintest.NewSystem(t, simCfg)}
}
