package oci

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// minMemory is docker's smallest memory limit.
const minMemory = 6 << 20

// cpuPeriod is the CFS period for --cpus.
const cpuPeriod = 100000

// Resources converts HostConfig's resource limits into the spec's, with
// docker's validation and its defaults: swap of twice the memory when only
// memory is set, a CFS period of 100ms for --cpus. numCPU is the number of
// CPUs the host offers (runtime.NumCPU when 0).
func Resources(r container.Resources, numCPU int) (*specs.LinuxResources, error) {
	if numCPU <= 0 {
		numCPU = runtime.NumCPU()
	}
	out := &specs.LinuxResources{}

	// Memory.
	if r.Memory != 0 || r.MemorySwap != 0 || r.MemoryReservation != 0 || r.MemorySwappiness != nil || r.OomKillDisable != nil {
		m := &specs.LinuxMemory{}
		if r.Memory < 0 {
			return nil, fmt.Errorf("invalid memory limit %d", r.Memory)
		}
		if r.Memory > 0 && r.Memory < minMemory {
			return nil, errors.New("Minimum memory limit allowed is 6MB")
		}
		if r.Memory > 0 {
			m.Limit = ptr(r.Memory)
		}
		switch {
		case r.MemorySwap == -1:
			m.Swap = ptr(int64(-1))
		case r.MemorySwap > 0 && r.Memory == 0:
			return nil, errors.New("You should always set the Memory limit when using Memoryswap limit, see usage")
		case r.MemorySwap > 0 && r.MemorySwap < r.Memory:
			return nil, errors.New("Minimum memoryswap limit should be larger than memory limit, see usage")
		case r.MemorySwap > 0:
			m.Swap = ptr(r.MemorySwap)
		case r.MemorySwap == 0 && r.Memory > 0:
			m.Swap = ptr(2 * r.Memory)
		case r.MemorySwap < -1:
			return nil, fmt.Errorf("invalid memory swap limit %d", r.MemorySwap)
		}
		if r.MemoryReservation != 0 {
			if r.MemoryReservation < minMemory {
				return nil, errors.New("Minimum memory reservation allowed is 6MB")
			}
			if r.Memory > 0 && r.Memory < r.MemoryReservation {
				return nil, errors.New("Minimum memory limit can not be less than memory reservation limit, see usage")
			}
			m.Reservation = ptr(r.MemoryReservation)
		}
		if s := r.MemorySwappiness; s != nil && *s != -1 {
			if *s < 0 || *s > 100 {
				return nil, fmt.Errorf("Invalid value: %d, valid memory swappiness range is 0-100", *s)
			}
			m.Swappiness = ptr(uint64(*s))
		}
		if r.OomKillDisable != nil {
			m.DisableOOMKiller = ptr(*r.OomKillDisable)
		}
		out.Memory = m
	}

	// CPU.
	c := &specs.LinuxCPU{}
	cpuSet := false
	if r.NanoCPUs != 0 {
		if r.CPUPeriod != 0 {
			return nil, errors.New("Conflicting options: Nano CPUs and CPU Period cannot both be set")
		}
		if r.CPUQuota != 0 {
			return nil, errors.New("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
		}
		if r.NanoCPUs < 1e7 || r.NanoCPUs > int64(numCPU)*1e9 {
			return nil, fmt.Errorf("range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", numCPU, numCPU)
		}
		c.Period = ptr(uint64(cpuPeriod))
		c.Quota = ptr(r.NanoCPUs * cpuPeriod / 1e9)
		cpuSet = true
	}
	if r.CPUPeriod != 0 {
		if r.CPUPeriod < 1000 || r.CPUPeriod > 1000000 {
			return nil, errors.New("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
		}
		c.Period = ptr(uint64(r.CPUPeriod))
		cpuSet = true
	}
	if r.CPUQuota != 0 {
		if r.CPUQuota > 0 && r.CPUQuota < 1000 {
			return nil, errors.New("CPU cfs quota can not be less than 1ms (i.e. 1000)")
		}
		if r.CPUQuota > 0 {
			c.Quota = ptr(r.CPUQuota)
			cpuSet = true
		}
	}
	if r.CPUShares != 0 {
		if r.CPUShares < 0 {
			return nil, fmt.Errorf("invalid CPU shares %d", r.CPUShares)
		}
		c.Shares = ptr(uint64(r.CPUShares))
		cpuSet = true
	}
	if r.CpusetCpus != "" {
		if err := checkCPUList(r.CpusetCpus); err != nil {
			return nil, fmt.Errorf("invalid value %s for cpuset cpus: %w", r.CpusetCpus, err)
		}
		c.Cpus = r.CpusetCpus
		cpuSet = true
	}
	if r.CpusetMems != "" {
		if err := checkCPUList(r.CpusetMems); err != nil {
			return nil, fmt.Errorf("invalid value %s for cpuset mems: %w", r.CpusetMems, err)
		}
		c.Mems = r.CpusetMems
		cpuSet = true
	}
	if cpuSet {
		out.CPU = c
	}

	if r.PidsLimit != nil && *r.PidsLimit > 0 {
		out.Pids = &specs.LinuxPids{Limit: r.PidsLimit}
	}
	if r.BlkioWeight != 0 {
		if r.BlkioWeight < 10 || r.BlkioWeight > 1000 {
			return nil, errors.New("Range of blkio weight is from 10 to 1000")
		}
		out.BlockIO = &specs.LinuxBlockIO{Weight: ptr(r.BlkioWeight)}
	}
	return out, nil
}

// checkCPUList checks the list syntax of cpuset.cpus and cpuset.mems:
// "0-3,5,7-8".
func checkCPUList(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return fmt.Errorf("bad number %q", lo)
		}
		if isRange {
			b, err := strconv.ParseUint(hi, 10, 16)
			if err != nil {
				return fmt.Errorf("bad number %q", hi)
			}
			if b < a {
				return fmt.Errorf("bad range %q", part)
			}
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
