package cgroups

import (
	"testing"
)

// The tests of this file need a pure cgroup v2 host; run them in the VM.

func TestV2ApplySet(t *testing.T) {
	skipUnlessMode(t, true)
	testApplySet(t)
}

func TestV2SetErrors(t *testing.T) {
	skipUnlessMode(t, true)
	testSetErrors(t)
}

func TestV2Devices(t *testing.T) {
	skipUnlessMode(t, true)
	testDevices(t)
}

func TestV2FreezeThaw(t *testing.T) {
	skipUnlessMode(t, true)
	testFreezeThaw(t)
}

func TestV2PidsStatsDestroy(t *testing.T) {
	skipUnlessMode(t, true)
	testPidsStatsDestroy(t)
}
