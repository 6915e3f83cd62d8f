package integration

import (
	"fmt"
	"testing"
)

// recordTB records Fatalf, Errorf, Skip and Cleanup instead of acting on
// them, for tests of the harness's own checks.
type recordTB struct {
	testing.TB
	fatal, skip string
	errs        []string
	cleanups    []func()
}

func (r *recordTB) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}
func (r *recordTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *recordTB) Helper()                        {}
func (r *recordTB) Fatalf(format string, a ...any) { r.fatal = fmt.Sprintf(format, a...) }
func (r *recordTB) Skip(a ...any)                  { r.skip = fmt.Sprint(a...) }

func TestMissingWeedFailsInCI(t *testing.T) {
	why := "no SeaweedFS weed binary"
	ci := &recordTB{TB: t}
	skipOrFailInCI(ci, true, why)
	if ci.fatal != "CI=true but this test cannot run: "+why || ci.skip != "" {
		t.Errorf("under CI: fatal %q, skip %q; want a failure naming the missing binary and no skip", ci.fatal, ci.skip)
	}
	dev := &recordTB{TB: t}
	skipOrFailInCI(dev, false, why)
	if dev.skip != why || dev.fatal != "" {
		t.Errorf("outside CI: fatal %q, skip %q; want a skip naming the missing binary", dev.fatal, dev.skip)
	}
}
