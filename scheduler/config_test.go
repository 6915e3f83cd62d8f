package scheduler

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/placement"
)

func TestDefaultThresholds(t *testing.T) {
	want := Thresholds{VacuumGarbage: 0.3, ECFullness: 0.95, ECQuietFor: time.Hour, ECMinSizeMB: 30, BalanceImbalance: 0.2, BalanceMovesPerRound: DefaultBalanceMovesPerRound, RepairAfter: 10 * time.Minute, ECBalanceSkew: DefaultECBalanceSkew}
	if got := DefaultThresholds(); got != want {
		t.Fatalf("DefaultThresholds() = %+v, want SeaweedFS's %+v", got, want)
	}
	if err := DefaultThresholds().Validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	if placement.TotalShards != 14 || placement.DataShards != 10 || placement.ParityShards != 4 || placement.MinECServers != 4 {
		t.Fatalf("EC layout %d+%d=%d on >= %d servers, want 10+4=14 on >= 4", placement.DataShards, placement.ParityShards, placement.TotalShards, placement.MinECServers)
	}
}

func TestThresholdsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Thresholds)
		// wantErr lists substrings the error must contain; nil means valid.
		wantErr []string
	}{
		{name: "defaults", mod: func(*Thresholds) {}},
		{name: "vacuum garbage 1 (only fully deleted volumes)", mod: func(th *Thresholds) { th.VacuumGarbage = 1 }},
		{name: "tiny vacuum garbage", mod: func(th *Thresholds) { th.VacuumGarbage = 1e-9 }},
		{name: "EC fullness 1", mod: func(th *Thresholds) { th.ECFullness = 1 }},
		{name: "EC quiet 0", mod: func(th *Thresholds) { th.ECQuietFor = 0 }},
		{name: "EC min size 0", mod: func(th *Thresholds) { th.ECMinSizeMB = 0 }},
		{name: "balance imbalance above 1", mod: func(th *Thresholds) { th.BalanceImbalance = 1.5 }},
		{name: "one balance move per round", mod: func(th *Thresholds) { th.BalanceMovesPerRound = 1 }},
		{name: "balance moves per round unset (the default)", mod: func(th *Thresholds) { th.BalanceMovesPerRound = 0 }},
		{name: "balance moves per round negative", mod: func(th *Thresholds) { th.BalanceMovesPerRound = -1 }, wantErr: []string{"balance moves per round", "-1"}},

		{name: "vacuum garbage 0", mod: func(th *Thresholds) { th.VacuumGarbage = 0 }, wantErr: []string{"vacuum garbage threshold", "0"}},
		{name: "vacuum garbage negative", mod: func(th *Thresholds) { th.VacuumGarbage = -0.1 }, wantErr: []string{"vacuum garbage threshold", "-0.1"}},
		{name: "vacuum garbage above 1", mod: func(th *Thresholds) { th.VacuumGarbage = 1.01 }, wantErr: []string{"vacuum garbage threshold", "1.01"}},
		{name: "vacuum garbage NaN", mod: func(th *Thresholds) { th.VacuumGarbage = math.NaN() }, wantErr: []string{"vacuum garbage threshold", "NaN"}},
		{name: "EC fullness 0", mod: func(th *Thresholds) { th.ECFullness = 0 }, wantErr: []string{"EC fullness ratio", "0"}},
		{name: "EC fullness negative", mod: func(th *Thresholds) { th.ECFullness = -1 }, wantErr: []string{"EC fullness ratio", "-1"}},
		{name: "EC fullness above 1", mod: func(th *Thresholds) { th.ECFullness = 1.2 }, wantErr: []string{"EC fullness ratio", "1.2"}},
		{name: "EC fullness NaN", mod: func(th *Thresholds) { th.ECFullness = math.NaN() }, wantErr: []string{"EC fullness ratio", "NaN"}},
		{name: "EC quiet negative by a nanosecond", mod: func(th *Thresholds) { th.ECQuietFor = -time.Nanosecond }, wantErr: []string{"EC quiet period", "-1ns"}},
		{name: "EC quiet negative", mod: func(th *Thresholds) { th.ECQuietFor = -time.Second }, wantErr: []string{"EC quiet period", "-1s"}},
		{name: "balance imbalance 0", mod: func(th *Thresholds) { th.BalanceImbalance = 0 }, wantErr: []string{"balance imbalance threshold", "0"}},
		{name: "balance imbalance negative", mod: func(th *Thresholds) { th.BalanceImbalance = -0.2 }, wantErr: []string{"balance imbalance threshold", "-0.2"}},
		{name: "balance imbalance NaN", mod: func(th *Thresholds) { th.BalanceImbalance = math.NaN() }, wantErr: []string{"balance imbalance threshold", "NaN"}},
		{name: "zero value", mod: func(th *Thresholds) { *th = Thresholds{} }, wantErr: []string{"vacuum garbage threshold"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := DefaultThresholds()
			tc.mod(&th)
			err := th.Validate()
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", th, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error naming %q", th, tc.wantErr[0])
			}
			msg := err.Error()
			if !contains(msg, tc.wantErr...) {
				t.Fatalf("Validate error %q, want it to contain %q", msg, tc.wantErr)
			}
			if strings.Contains(msg, "\n") || strings.Count(msg, ". ") > 0 {
				t.Errorf("Validate error %q is not one sentence", msg)
			}
		})
	}
}
