// Package simtest starts simulated SeaweedFS clusters for tests and dials
// their masters, each closed when the test ends. It is for tests only;
// nothing in the product imports it.
package simtest

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// Start runs a simulated cluster of cfg for the rest of the test.
func Start(t testing.TB, cfg sim.Config) *sim.Cluster {
	t.Helper()
	c, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Master dials c's master for the rest of the test.
func Master(t testing.TB, c *sim.Cluster) *seaweed.Master {
	t.Helper()
	m, err := seaweed.DialMaster(c.MasterServerAddress().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Volume adds a volume of spec to c, failing the test if it cannot.
func Volume(t testing.TB, c *sim.Cluster, spec sim.VolumeSpec) uint32 {
	t.Helper()
	vid, err := c.AddVolume(spec)
	if err != nil {
		t.Fatal(err)
	}
	return vid
}

// VolumeClient is a volume-server client for the rest of the test.
func VolumeClient(t testing.TB) *seaweed.VolumeClient {
	vc := seaweed.NewVolumeClient()
	t.Cleanup(func() { vc.Close() })
	return vc
}
