package oci

import (
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
)

func TestResources(t *testing.T) {
	pids := int64(100)
	unlimited := int64(-1)
	swappiness := int64(10)
	r, err := Resources(container.Resources{
		Memory:            64 << 20,
		MemoryReservation: 32 << 20,
		MemorySwappiness:  &swappiness,
		NanoCPUs:          1_500_000_000,
		CPUShares:         512,
		CpusetCpus:        "0-1",
		CpusetMems:        "0",
		PidsLimit:         &pids,
		BlkioWeight:       300,
	}, 2)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "limit", *r.Memory.Limit, int64(64<<20))
	eq(t, "swap (twice memory)", *r.Memory.Swap, int64(128<<20))
	eq(t, "reservation", *r.Memory.Reservation, int64(32<<20))
	eq(t, "swappiness", *r.Memory.Swappiness, uint64(10))
	eq(t, "period", *r.CPU.Period, uint64(100000))
	eq(t, "quota", *r.CPU.Quota, int64(150000))
	eq(t, "shares", *r.CPU.Shares, uint64(512))
	eq(t, "cpus", r.CPU.Cpus, "0-1")
	eq(t, "mems", r.CPU.Mems, "0")
	eq(t, "pids", *r.Pids.Limit, int64(100))
	eq(t, "blkio", *r.BlockIO.Weight, uint16(300))

	r, err = Resources(container.Resources{Memory: 64 << 20, MemorySwap: -1, PidsLimit: &unlimited, CPUQuota: 50000, CPUPeriod: 200000}, 2)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "unlimited swap", *r.Memory.Swap, int64(-1))
	eq(t, "pids unlimited", r.Pids == nil, true)
	eq(t, "quota", *r.CPU.Quota, int64(50000))
	eq(t, "period", *r.CPU.Period, uint64(200000))

	r, err = Resources(container.Resources{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Memory != nil || r.CPU != nil || r.Pids != nil || r.BlockIO != nil {
		t.Errorf("no limits gave %+v", r)
	}
}

func TestResourcesErrors(t *testing.T) {
	tests := []struct {
		r   container.Resources
		msg string
	}{
		{container.Resources{Memory: 4 << 20}, "Minimum memory limit allowed is 6MB"},
		{container.Resources{Memory: 64 << 20, MemorySwap: 32 << 20}, "Minimum memoryswap limit should be larger than memory limit"},
		{container.Resources{MemorySwap: 32 << 20}, "always set the Memory limit"},
		{container.Resources{Memory: 8 << 20, MemoryReservation: 16 << 20}, "less than memory reservation"},
		{container.Resources{NanoCPUs: 3e9}, "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"},
		{container.Resources{NanoCPUs: 1e6}, "range of CPUs is from 0.01 to 2.00"},
		{container.Resources{NanoCPUs: 1e9, CPUQuota: 10000}, "Nano CPUs and CPU Quota"},
		{container.Resources{CPUPeriod: 10}, "CPU cfs period"},
		{container.Resources{CPUQuota: 10}, "CPU cfs quota"},
		{container.Resources{CpusetCpus: "0-a"}, "cpuset cpus"},
		{container.Resources{BlkioWeight: 5}, "blkio weight"},
	}
	for _, tt := range tests {
		_, err := Resources(tt.r, 2)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Resources(%+v) = %v, want error containing %q", tt.r, err, tt.msg)
		}
	}
	// Through Generate, with the number of CPUs given.
	in := testInput(t)
	in.NumCPU = 4
	in.Host.NanoCPUs = 5e9
	if _, err := Generate(in); err == nil || !strings.Contains(err.Error(), "0.01 to 4.00") {
		t.Errorf("Generate with --cpus 5 on 4 CPUs: %v", err)
	}
}
