package cgroups

import (
	"testing"
)

// The tests of this file need a legacy or hybrid cgroup host.

func TestV1ApplySet(t *testing.T) {
	skipUnlessMode(t, false)
	testApplySet(t)
}

func TestV1SetErrors(t *testing.T) {
	skipUnlessMode(t, false)
	testSetErrors(t)
}

func TestV1Devices(t *testing.T) {
	skipUnlessMode(t, false)
	testDevices(t)
}

func TestV1FreezeThaw(t *testing.T) {
	skipUnlessMode(t, false)
	testFreezeThaw(t)
}

func TestV1PidsStatsDestroy(t *testing.T) {
	skipUnlessMode(t, false)
	testPidsStatsDestroy(t)
}
