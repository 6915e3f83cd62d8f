package placement

import (
	"errors"
	"testing"
)

// TestPlanErrorMatchesItsMarker: a plan error says its marker then its
// reason, and matches exactly one of ErrPlan and ErrPlanWait.
func TestPlanErrorMatchesItsMarker(t *testing.T) {
	for _, tc := range []struct {
		err            error
		text           string
		isPlan, isWait bool
	}{
		{Errorf("volume %d gone", 7), "cannot plan task: volume 7 gone", true, false},
		{Waitf("volume %d: waiting", 7), "cannot plan task yet: volume 7: waiting", false, true},
	} {
		if tc.err.Error() != tc.text || errors.Is(tc.err, ErrPlan) != tc.isPlan || errors.Is(tc.err, ErrPlanWait) != tc.isWait {
			t.Errorf("%q: Is(ErrPlan) %v, Is(ErrPlanWait) %v; want %q, %v, %v", tc.err, errors.Is(tc.err, ErrPlan), errors.Is(tc.err, ErrPlanWait), tc.text, tc.isPlan, tc.isWait)
		}
	}
}
