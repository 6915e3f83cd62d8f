package rpc

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/certs"
)

// TestRoleAllows: reader < operator < admin; the worker role neither
// includes nor is included in another.
func TestRoleAllows(t *testing.T) {
	r, o, a, w := certs.RoleReader, certs.RoleOperator, certs.RoleAdmin, certs.RoleWorker
	allowed := map[[2]certs.Role]bool{
		{r, r}: true, {o, r}: true, {a, r}: true, {w, r}: false,
		{r, o}: false, {o, o}: true, {a, o}: true, {w, o}: false,
		{r, a}: false, {o, a}: false, {a, a}: true, {w, a}: false,
		{r, w}: false, {o, w}: false, {a, w}: false, {w, w}: true,
		{"", r}: false, {"root", r}: false,
	}
	for pair, want := range allowed {
		if got := roleAllows(pair[0], pair[1]); got != want {
			t.Errorf("roleAllows(have %q, need %q) = %v, want %v", pair[0], pair[1], got, want)
		}
	}
}
