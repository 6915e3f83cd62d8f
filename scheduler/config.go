package scheduler

import (
	"fmt"
	"time"
)

// Thresholds decide what counts as maintenance work; the defaults are
// SeaweedFS's own.
type Thresholds struct {
	VacuumGarbage    float64       // vacuum when deleted/size >= this (0.3)
	ECFullness       float64       // erasure-code when size/limit >= this (0.95)
	ECQuietFor       time.Duration // ... and unmodified for this long (1h)
	ECMinSizeMB      uint64        // ... and at least this big (30 MB)
	BalanceImbalance float64       // balance when (max-min)/avg slot usage >= this (0.2)
	// BalanceMovesPerRound bounds the moves one detection round proposes
	// per disk type (0: DefaultBalanceMovesPerRound).
	BalanceMovesPerRound int
	// RepairAfter is how long a volume must stay at reduced redundancy
	// (a server gone, its copies with it) before a repair is proposed
	// (DefaultRepairAfter; 0: at once), so a restart or a short network
	// blip causes no copying.
	RepairAfter time.Duration
	// ECBalanceSkew: ec_balance evens out servers whose EC shard counts
	// differ by more than this (0: DefaultECBalanceSkew; -1: no ec_balance
	// is detected at all, spread included).
	ECBalanceSkew int
	// DeleteEmptyQuiet: delete_empty deletes a regular volume with no live
	// file once unmodified this long (0, the default: delete_empty is
	// never detected; manual submissions still run).
	DeleteEmptyQuiet time.Duration
}

// DefaultRepairAfter is Thresholds.RepairAfter's default: as HDFS and Ceph,
// wait ten minutes before re-replicating.
const DefaultRepairAfter = 10 * time.Minute

// DefaultBalanceMovesPerRound is Thresholds.BalanceMovesPerRound's default.
const DefaultBalanceMovesPerRound = 8

// movesPerRound is BalanceMovesPerRound, or its default when unset.
func (t Thresholds) movesPerRound() int {
	if t.BalanceMovesPerRound <= 0 {
		return DefaultBalanceMovesPerRound
	}
	return t.BalanceMovesPerRound
}

// DefaultThresholds are SeaweedFS's defaults.
func DefaultThresholds() Thresholds {
	return Thresholds{VacuumGarbage: 0.3, ECFullness: 0.95, ECQuietFor: time.Hour, ECMinSizeMB: 30, BalanceImbalance: 0.2,
		BalanceMovesPerRound: DefaultBalanceMovesPerRound, RepairAfter: DefaultRepairAfter, ECBalanceSkew: DefaultECBalanceSkew}
}

// Validate refuses out-of-range values with one sentence.
func (t Thresholds) Validate() error {
	switch {
	case !(t.VacuumGarbage > 0 && t.VacuumGarbage <= 1):
		return fmt.Errorf("vacuum garbage threshold %v is out of range (0, 1]", t.VacuumGarbage)
	case !(t.ECFullness > 0 && t.ECFullness <= 1):
		return fmt.Errorf("EC fullness ratio %v is out of range (0, 1]", t.ECFullness)
	case t.ECQuietFor < 0:
		return fmt.Errorf("EC quiet period %s must not be negative", t.ECQuietFor)
	case !(t.BalanceImbalance > 0):
		return fmt.Errorf("balance imbalance threshold %v must be greater than 0", t.BalanceImbalance)
	case t.BalanceMovesPerRound < 0:
		return fmt.Errorf("balance moves per round %d must not be negative", t.BalanceMovesPerRound)
	case t.ECBalanceSkew < -1:
		return fmt.Errorf("EC balance skew %d must be -1 (no EC balancing) or more", t.ECBalanceSkew)
	case t.DeleteEmptyQuiet < 0:
		return fmt.Errorf("delete-empty quiet time %s must not be negative (0 deletes no empty volume)", t.DeleteEmptyQuiet)
	case t.RepairAfter < 0:
		return fmt.Errorf("repair-after %s must not be negative (0 repairs at once)", t.RepairAfter)
	}
	return nil
}
