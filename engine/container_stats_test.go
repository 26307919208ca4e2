package engine

import (
	"math"
	"testing"

	"github.com/berth-project/berth/cgroups"
)

func TestStatsCPUPercent(t *testing.T) {
	prev := StatsSample{CPUTotal: 1e9, SystemCPU: 100e9, OnlineCPUs: 2}
	// 0.5 s of CPU while the host's two CPUs spent 2 s: one quarter of
	// the host, 50% in docker's per-CPU scale.
	cur := StatsSample{CPUTotal: 1.5e9, SystemCPU: 102e9, OnlineCPUs: 2}
	if got := CPUPercent(prev, cur); math.Abs(got-50) > 1e-9 {
		t.Fatalf("CPUPercent = %v, want 50", got)
	}
	if got := CPUPercent(cur, prev); got != 0 {
		t.Fatalf("CPUPercent of a counter going back = %v, want 0", got)
	}
	if got := (StatsSample{MemUsage: 16 << 20, MemLimit: 64 << 20}).MemPercent(); got != 25 {
		t.Fatalf("MemPercent = %v, want 25", got)
	}
}

func TestStatsMemUsage(t *testing.T) {
	for _, c := range []struct {
		usage uint64
		raw   map[string]uint64
		want  uint64
	}{
		{100, map[string]uint64{"total_inactive_file": 30, "inactive_file": 10}, 70}, // v1 prefers the hierarchy total
		{100, map[string]uint64{"inactive_file": 10}, 90},                            // v2
		{100, map[string]uint64{"inactive_file": 200}, 100},                          // never below zero
		{100, nil, 100},
	} {
		st := &cgroups.Stats{}
		st.Memory.Usage.Usage, st.Memory.Raw = c.usage, c.raw
		if got := memUsage(st); got != c.want {
			t.Errorf("memUsage(%d, %v) = %d, want %d", c.usage, c.raw, got, c.want)
		}
	}
}

func TestStatsSystemCPU(t *testing.T) {
	a, err := systemCPU()
	if err != nil {
		t.Fatal(err)
	}
	if a == 0 || onlineCPUs() < 1 || hostMemory() == 0 {
		t.Fatalf("systemCPU %d, onlineCPUs %d, hostMemory %d", a, onlineCPUs(), hostMemory())
	}
	if rx, tx := netIO(1); rx != 0 || tx != 0 {
		// pid 1 shares this test's network namespace unless the test
		// runs in a container of its own.
		t.Logf("pid 1 in another netns: rx %d tx %d", rx, tx)
	}
}
